"""Pictures of detections: boxes, class names and scores drawn on an image (``bench predict``)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from tasks.synthetic import PALETTE


def draw_detections(
    pixels: np.ndarray, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, names: list[str]
) -> Image.Image:
    """``pixels`` HxWx3 uint8; boxes (x0, y0, x1, y1) in its pixels; labels index ``names``."""
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    for (x0, y0, x1, y1), label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist(), strict=True):
        color = PALETTE[int(label) % len(PALETTE)]
        draw.rectangle((x0, y0, x1, y1), outline=color, width=2)
        name = names[int(label)] if int(label) < len(names) else str(label)
        text = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x0 + 2, max(0.0, y0 - 12)), text)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=color)
        draw.text((x0 + 2, max(0.0, y0 - 12)), text, fill=(255, 255, 255))
    return picture
