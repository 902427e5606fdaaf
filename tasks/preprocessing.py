"""Named evaluation preprocessing presets: how images become model inputs.

``torchvision`` (default): ImageNet mean/std normalisation; classification resizes the short side to
resolution / 0.875 and centre-crops. The TF presets are what Google's released checkpoints were
trained and evaluated with, so imported TFLite weights are measured as published:

- ``tf-inception`` (TF-slim ``inception_preprocessing`` at evaluation): central crop of 87.5 % of
  each side, bilinear resize to the model input, pixels scaled to [-1, 1]. The resize is PIL's
  bilinear filter (antialiased when shrinking), as the LiteRT reference numbers were measured with:
  on the real-data slice, cv2's non-antialiased bilinear moves MobileNetV1 0.25 at 128 by +3 points
  top-1 under LiteRT itself (55.9 vs 52.9), while PIL reproduces the reference exactly.
- ``tf-ssd`` (TF object-detection API SSD at evaluation): the whole image resized (PIL bilinear)
  to resolution x resolution, pixels scaled to [-1, 1]; boxes are scaled back per axis.
- ``tf-deeplab`` (TF DeepLab ``input_preprocess`` at evaluation): no resize, pixels scaled to
  [-1, 1], the image padded bottom/right to resolution x resolution (513) with the mean value
  (0 after scaling; LiteRT's uint8 reference pads with 128), prediction cropped back.
- ``tf-deeplab-resize`` (the float ``deeplabv3_257_mv_gpu`` file's use): pixels scaled to [-1, 1],
  the whole image resized (bilinear, antialiased as PIL's) to resolution x resolution, the arg-max
  resized back to the image (nearest).
"""

from __future__ import annotations

from functools import partial

import albumentations as A
import numpy as np
from albumentations.pytorch import ToTensorV2
from PIL import Image

from backbones.errors import UserError
from tasks.images import IMAGENET_MEAN, IMAGENET_STD

TF_MEAN = (0.5, 0.5, 0.5)  # x / 127.5 - 1
TF_STD = (0.5, 0.5, 0.5)

PRESETS = {
    "classification": ("torchvision", "tf-inception"),
    "segmentation": ("torchvision", "tf-deeplab", "tf-deeplab-resize"),
    "detection": ("torchvision", "tf-ssd"),
}
CENTRAL_FRACTION = 0.875


def check_preset(preset: str | None, task: str) -> str:
    """The preset name, default ``torchvision``; one the task does not know is a UserError."""
    preset = preset or "torchvision"
    known = PRESETS.get(task, ("torchvision",))
    if preset not in known:
        raise UserError(f"--preset: {preset!r} is not a {task} preset; choose from {', '.join(known)}")
    return preset


def mean_std(preset: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the 0..1 scale (``A.Normalize`` multiplies by 255)."""
    return (TF_MEAN, TF_STD) if preset.startswith("tf-") else (IMAGENET_MEAN, IMAGENET_STD)


def normalize(preset: str) -> A.Normalize:
    mean, std = mean_std(preset)
    return A.Normalize(mean, std)


def mean_pixel(preset: str) -> tuple[float, ...]:
    """The 0..255 pixel that normalises to 0 (what padding uses)."""
    return tuple(255.0 * m for m in mean_std(preset)[0])


def central_crop(image: np.ndarray, fraction: float = CENTRAL_FRACTION, **_) -> np.ndarray:
    """``tf.image.central_crop``: keep ``fraction`` of each side, offsets rounded down."""
    height, width = image.shape[:2]
    top = int((height - height * fraction) / 2)
    left = int((width - width * fraction) / 2)
    return image[top : height - top, left : width - left]


def pil_bilinear_resize(image: np.ndarray, size: int, **_) -> np.ndarray:
    """Resize an HxWx3 uint8 array to size x size with PIL's bilinear filter."""
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def classification_eval_transform(resolution: int, preset: str = "torchvision") -> A.Compose:
    if preset == "tf-inception":
        return A.Compose(
            [
                A.Lambda(image=partial(central_crop, fraction=CENTRAL_FRACTION), name="central_crop"),
                A.Lambda(image=partial(pil_bilinear_resize, size=resolution), name="pil_bilinear_resize"),
                normalize(preset),
                ToTensorV2(),
            ]
        )
    # Resize the short side to resolution / 0.875, centre crop (the standard ImageNet evaluation).
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=int(resolution / CENTRAL_FRACTION)),
            A.CenterCrop(resolution, resolution),
            normalize(preset),
            ToTensorV2(),
        ]
    )


def detection_eval_transform(resolution: int, preset: str = "torchvision") -> A.Compose:
    """The whole image to a square input; ``tf-ssd`` resizes with PIL's bilinear filter as the
    LiteRT reference numbers were measured, ``torchvision`` with OpenCV's (as training)."""
    resize = (
        A.Lambda(image=partial(pil_bilinear_resize, size=resolution), name="pil_bilinear_resize")
        if preset == "tf-ssd"
        else A.Resize(resolution, resolution)
    )
    return A.Compose([resize, normalize(preset), ToTensorV2()])
