"""Embedded segmentation data: textured shapes on varied backgrounds, written in the VOC 2012 layout.

Like VOC: JPEG images of varying size, palette PNG masks (0 = background, 255 = void), a void band
along every object boundary, and ``ImageSets/Segmentation/{train,val,trainval}.txt``. A
``class_names.txt`` names the classes (background first), so num_classes = shapes + 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from tasks.segmentation.drawing import palette_image
from tasks.segmentation.labels import VOID
from tasks.synthetic import PALETTE, background, draw_shape, generate_once

VERSION = 3
# Six classes: distinct silhouettes, and hues that pair up (triangle/hexagon are both yellowish) so
# colour alone does not decide every class.
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "ring")
CLASS_NAMES = ("background", *SHAPES)
SPLITS = {"train": 360, "val": 80}  # images
SIZE_RANGE = (150, 210)  # width and height drawn independently, like VOC's mixed aspect ratios
# VOC outlines objects with a void band about 5 pixels wide.
BORDER = 5


def synthetic_voc() -> Path:
    """Generate (once) and return the root holding ``VOCdevkit/VOC2012``."""
    return generate_once(f"segmentation-synthetic-voc-v{VERSION}", VERSION, _write)


def _write(root: Path) -> None:
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    (voc / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    lists: dict[str, list[str]] = {}
    for seed, (split, count) in enumerate(SPLITS.items()):
        rng = np.random.default_rng(100 + seed)
        ids = [f"synth_{split}_{i:05d}" for i in range(count)]
        for image_id in ids:
            image, labels = draw_scene(rng)
            image.save(voc / "JPEGImages" / f"{image_id}.jpg", quality=92)
            palette_image(labels).save(voc / "SegmentationClass" / f"{image_id}.png")
        lists[split] = ids
    lists["trainval"] = lists["train"] + lists["val"]
    for split, ids in lists.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def muted(image: Image.Image, saturation: float = 0.35) -> Image.Image:
    """Background colours pulled towards gray, so the objects' class hues stand out (from scratch,
    a few minutes of CPU training learn colour and shape; texture and lighting still vary)."""
    pixels = np.asarray(image, np.float32)
    gray = pixels.mean(-1, keepdims=True)
    return Image.fromarray((gray + saturation * (pixels - gray)).clip(0, 255).astype(np.uint8))


def draw_scene(rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """One image with 1-3 possibly overlapping shapes and its class-index mask with void borders."""
    width, height = (int(v) for v in rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1, size=2))
    image = muted(background(rng, width, height))
    labels = Image.new("L", (width, height), 0)
    for _ in range(int(rng.integers(1, 4))):
        label = int(rng.integers(1, len(CLASS_NAMES)))
        side = rng.uniform(0.35, 0.7) * min(width, height)
        aspect = rng.uniform(0.75, 1.33)
        w, h = side, side * aspect
        x0, y0 = rng.uniform(-0.1 * w, width - 0.9 * w), rng.uniform(-0.1 * h, height - 0.9 * h)
        draw_shape(
            image,
            SHAPES[label - 1],
            (x0, y0, x0 + w, y0 + h),
            PALETTE[label - 1],
            rng,
            mask=labels,
            mask_value=label,
        )
    # Void band: pixels whose neighbourhood holds more than one label (object edges, occlusions).
    highest = np.array(labels.filter(ImageFilter.MaxFilter(BORDER)))
    lowest = np.array(labels.filter(ImageFilter.MinFilter(BORDER)))
    mask = np.array(labels)
    mask[highest != lowest] = VOID
    return image, mask
