"""Embedded classification data: textured shapes on varied backgrounds, in ImageNet's ImageFolder layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.synthetic import PALETTE, SHAPES, background, draw_shape, generate_once

VERSION = 1
IMAGE_SIZE = 96
SPLITS = {"train": 120, "val": 30}  # images per class


def synthetic_imagefolder() -> Path:
    """Generate (once) and return the root of the synthetic ImageFolder dataset."""
    return generate_once(f"classification-synthetic-v{VERSION}", VERSION, _write)


def _write(root: Path) -> None:
    for split, per_class in SPLITS.items():
        rng = np.random.default_rng(0 if split == "train" else 1)
        for label, shape in enumerate(SHAPES):
            folder = root / split / f"n{label:08d}_{shape}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = background(rng, IMAGE_SIZE, IMAGE_SIZE)
                side = rng.uniform(0.35, 0.8) * IMAGE_SIZE
                x0 = rng.uniform(0, IMAGE_SIZE - side)
                y0 = rng.uniform(0, IMAGE_SIZE - side)
                aspect = rng.uniform(0.8, 1.25)
                box = (x0, y0, x0 + side, y0 + min(IMAGE_SIZE - y0, side * aspect))
                draw_shape(image, shape, box, PALETTE[label], rng)
                image.save(folder / f"{split}_{label}_{i:05d}.JPEG", quality=90)
