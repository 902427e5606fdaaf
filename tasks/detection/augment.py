"""Detection images and augmentation: the SSD paper's random crop (as albumentations' crop), the
training and evaluation transforms with their box handling."""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
from albumentations.augmentations.crops import functional as fcrops
from albumentations.augmentations.crops.transforms import BaseCrop
from albumentations.pytorch import ToTensorV2

from backbones.errors import UserError
from tasks.detection.options import DEFAULTS, RANDOM_CROPS
from tasks.images import IMAGENET_MEAN, IMAGENET_STD, load_rgb


def read_image(path: str) -> np.ndarray:
    """Decoded to RGB in the stored orientation: COCO's boxes are drawn on the stored pixels."""
    return load_rgb(path, exif_rotation=False)


class SSDRandomCrop(BaseCrop):
    """SSD's random crop (Liu et al. 2016, section 2.2; TF ``ssd_random_crop``).

    Pick a minimum IoU from {whole image, 0.1, 0.3, 0.5, 0.7, 0.9}; sample crops of 30-100% of
    each side with aspect ratio 1/2..2 until one overlaps a box whose centre it contains by at
    least that IoU. Boxes whose centre falls outside the crop are dropped, the rest clipped.
    """

    MIN_IOUS = (None, 0.1, 0.3, 0.5, 0.7, 0.9)

    def __init__(self, min_scale: float = 0.3, max_aspect: float = 2.0, trials: int = 50, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.min_scale = min_scale
        self.max_aspect = max_aspect
        self.trials = trials

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        # Albumentations hands boxes over normalised, label columns appended.
        bboxes = data.get("bboxes")
        boxes = np.zeros((0, 4)) if bboxes is None or len(bboxes) == 0 else np.asarray(bboxes)[:, :4]
        boxes = boxes * np.array([width, height, width, height])
        whole = {"crop_coords": (0, 0, width, height), "keep": np.ones(len(boxes), dtype=bool)}
        for _ in range(10):
            min_iou = self.py_random.choice(self.MIN_IOUS)
            if min_iou is None:
                return whole
            for _ in range(self.trials):
                crop_w = int(width * self.py_random.uniform(self.min_scale, 1.0))
                crop_h = int(height * self.py_random.uniform(self.min_scale, 1.0))
                if crop_w < 2 or crop_h < 2 or not 1 / self.max_aspect <= crop_w / crop_h <= self.max_aspect:
                    continue
                left = self.py_random.randint(0, width - crop_w)
                top = self.py_random.randint(0, height - crop_h)
                crop = (left, top, left + crop_w, top + crop_h)
                if len(boxes) == 0:
                    return {"crop_coords": crop, "keep": np.zeros(0, dtype=bool)}
                cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
                keep = (cx > crop[0]) & (cx < crop[2]) & (cy > crop[1]) & (cy < crop[3])
                if not keep.any():
                    continue
                inter_w = np.clip(np.minimum(boxes[keep, 2], crop[2]) - np.maximum(boxes[keep, 0], crop[0]), 0, None)
                inter_h = np.clip(np.minimum(boxes[keep, 3], crop[3]) - np.maximum(boxes[keep, 1], crop[1]), 0, None)
                inter = inter_w * inter_h
                areas = (boxes[keep, 2] - boxes[keep, 0]) * (boxes[keep, 3] - boxes[keep, 1])
                iou = inter / (areas + crop_w * crop_h - inter)
                if iou.max() >= min_iou:
                    return {"crop_coords": crop, "keep": keep}
        return whole

    def apply_to_bboxes(self, bboxes: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        keep = params.get("keep")
        if keep is not None and len(keep) == len(bboxes):
            bboxes = bboxes[keep]
        return fcrops.crop_bboxes_by_coords(bboxes, crop_coords, params["shape"][:2])




def train_transform(resolution: int, random_crop: str = DEFAULTS.random_crop) -> A.Compose:
    """SSD augmentation: random IoU crop, flip, photometric distortion, then resize to a square.

    ``random_crop="none"`` leaves the crop out: it zooms in, so objects are larger in training than
    in evaluation, which a long COCO schedule absorbs and a few hundred steps do not.
    """
    if random_crop not in RANDOM_CROPS:
        raise UserError(f"--random-crop: unknown value {random_crop!r}; choose from {', '.join(RANDOM_CROPS)}")
    return A.Compose(
        [
            *([SSDRandomCrop()] if random_crop == "ssd" else []),
            A.HorizontalFlip(p=0.5),
            # SSD's photometric distortions (brightness, contrast, saturation, hue), half the time.
            A.ColorJitter(brightness=0.2, contrast=0.5, saturation=0.5, hue=0.05, p=0.5),
            A.Resize(resolution, resolution),
            A.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ToTensorV2(),
        ],
        bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["labels"], clip=True, filter_invalid_bboxes=True, min_width=1, min_height=1
        ),
    )


def eval_transform(resolution: int, preset: str = "torchvision") -> A.Compose:
    """Bilinear resize to the square input (as training); boxes go back with the per-axis scale.
    ``preset`` (tasks/preprocessing.py): ``torchvision`` or ``tf-ssd`` (TF's SSD checkpoints)."""
    from tasks.preprocessing import detection_eval_transform

    return detection_eval_transform(resolution, preset)
