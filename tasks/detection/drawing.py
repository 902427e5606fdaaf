"""Pictures of detections: boxes, class names and scores drawn on an image (``bench predict``), and the
true boxes beside them (the pictures ``bench run`` writes of validation images)."""

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


def draw_truth(picture: Image.Image, boxes: np.ndarray, labels: np.ndarray, names: list[str]) -> Image.Image:
    """The true boxes on ``picture``, in white with a black edge and "true <name>" under each box,
    so they read apart from the coloured predicted boxes above."""
    draw = ImageDraw.Draw(picture)
    for (x0, y0, x1, y1), label in zip(boxes.tolist(), labels.tolist(), strict=True):
        draw.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), outline=(0, 0, 0), width=1)
        draw.rectangle((x0, y0, x1, y1), outline=(255, 255, 255), width=1)
        name = names[int(label)] if int(label) < len(names) else str(label)
        draw.text((x0 + 2, min(y1 + 1, picture.height - 11)), f"true {name}", fill=(255, 255, 255), stroke_width=1,
                  stroke_fill=(0, 0, 0))
    return picture
