"""Embedded detection data: shapes on varied backgrounds, written as COCO 2017 (JPEGs + instances JSON).

Synthetic, and labelled so in every record. It exercises what real COCO throws at the loader:
category ids with gaps (COCO's are 1..90 for 80 classes), images of different sizes and aspect
ratios (boxes must map back to each original size), several overlapping objects per image from
small (< 32^2 pixels, COCO's "small") to large, objects cut by the frame, and images without objects.

Object sides run from a fifth to four fifths of the image's short side, the range of SSDLite's anchors
(scales 0.2 to 0.95): version 3 drew them from 16 pixels up, and the third of them smaller than any
anchor went almost all unmatched, so the demo's short schedule learned to detect little (AP50 6-9 %).
Version 4 still has small objects (about one in twelve), fewer per image (1-3), the same classes,
and a hue of its own per class (``COLOURS``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tasks.synthetic import background, draw_shape, generate_once

VERSION = 4
CATEGORIES = [(1, "circle"), (3, "square"), (7, "triangle"), (8, "star"), (12, "cross")]
# One hue per class, at least 50 degrees apart: the shared palette gave triangle and cross hues 23
# degrees apart (olive, ochre), and after colour jitter the detector confused them most.
COLOURS = [(220, 40, 40), (40, 90, 230), (40, 180, 60), (240, 210, 40), (200, 60, 210)]
SPLITS = {"train": 640, "val": 128}
WIDTHS, HEIGHTS = (160, 240), (128, 200)  # image sizes vary within these ranges
EMPTY_FRACTION = 0.08
MAX_OBJECTS = 3
SIDES = (0.2, 0.8)  # object side, as fractions of the image's short side (log-uniform)


def synthetic_coco() -> Path:
    """Generate (once) and return the root of the synthetic COCO-format dataset."""
    return generate_once(f"detection-synthetic-v{VERSION}", VERSION, _write)


def _write(root: Path) -> None:
    (root / "annotations").mkdir(parents=True)
    for split, count in SPLITS.items():
        rng = np.random.default_rng(10 if split == "train" else 11)
        folder = root / f"{split}2017"
        folder.mkdir()
        images, annotations = [], []
        for index in range(count):
            image_id = 1000 + 3 * index  # gapped image ids, as in COCO
            width, height = int(rng.integers(*WIDTHS)), int(rng.integers(*HEIGHTS))
            image = background(rng, width, height)
            n_objects = 0 if rng.random() < EMPTY_FRACTION else int(rng.integers(1, MAX_OBJECTS + 1))
            for _ in range(n_objects):
                category = int(rng.integers(len(CATEGORIES)))
                # Log-uniform size over the anchors' scales: the smallest (a fifth of a 128-pixel side) are
                # COCO "small" (under 32^2 pixels), the largest fill most of the frame.
                low, high = (fraction * min(width, height) for fraction in SIDES)
                side = float(np.exp(rng.uniform(np.log(low), np.log(high))))
                aspect = rng.uniform(0.75, 1.33)
                w, h = side * aspect, side / aspect
                x0, y0 = rng.uniform(-0.1 * w, width - 0.9 * w), rng.uniform(-0.1 * h, height - 0.9 * h)
                shape = CATEGORIES[category][1]
                outline = draw_shape(image, shape, (x0, y0, x0 + w, y0 + h), COLOURS[category], rng)
                # The box is the visible part of the drawn outline (objects may leave the frame).
                bx0, by0 = max(0.0, outline[0]), max(0.0, outline[1])
                bx1, by1 = min(float(width), outline[2]), min(float(height), outline[3])
                if bx1 - bx0 < 2 or by1 - by0 < 2:
                    continue
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": CATEGORIES[category][0],
                        "bbox": [round(bx0, 2), round(by0, 2), round(bx1 - bx0, 2), round(by1 - by0, 2)],
                        "area": round((bx1 - bx0) * (by1 - by0), 2),
                        "iscrowd": 0,
                    }
                )
            file_name = f"{image_id:012d}.jpg"
            image.save(folder / file_name, quality=90)
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        data = {
            "info": {"description": "mobile-vision-bench synthetic shapes (not COCO images)", "version": VERSION},
            "images": images,
            "annotations": annotations,
            "categories": [{"id": cid, "name": name, "supercategory": "shape"} for cid, name in CATEGORIES],
        }
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
