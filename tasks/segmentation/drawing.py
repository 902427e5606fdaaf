"""Segmentation pictures: VOC's colour map, colour overlays, normalised tensors back to pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def voc_palette(size: int = 256) -> np.ndarray:
    """PASCAL VOC's colour map (the devkit's ``labelcolormap``): index -> RGB, bits of the index
    spread over the high bits of the three channels; 255 (void) comes out cream (224, 224, 192)."""
    palette = np.zeros((size, 3), np.uint8)
    for index in range(size):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


PALETTE = voc_palette()


def palette_image(labels: np.ndarray) -> Image.Image:
    """Class indices as a VOC-style palette PNG (mode ``P``), the format of ``SegmentationClass``."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(PALETTE.flatten().tolist())
    return image


def overlay(pixels: np.ndarray, labels: np.ndarray, names: list[str], alpha: float = 0.55) -> Image.Image:
    """``pixels`` (HxWx3 uint8) with every non-background class painted in its VOC colour and a
    legend of the classes present."""
    colours = PALETTE[labels.astype(np.int64) % len(PALETTE)].astype(np.float32)
    painted = labels > 0
    blended = pixels.astype(np.float32)
    blended[painted] = (1 - alpha) * blended[painted] + alpha * colours[painted]
    picture = Image.fromarray(blended.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    present = [int(c) for c in np.unique(labels) if c > 0]
    for row, label in enumerate(present):
        name = names[label] if label < len(names) else str(label)
        y = 4 + 12 * row
        draw.rectangle((4, y, 12, y + 8), fill=tuple(int(c) for c in PALETTE[label]))
        draw.text((16, y - 2), name, fill=(255, 255, 255))
    return picture
