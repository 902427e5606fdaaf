"""Image files as RGB arrays, whatever real datasets throw at a loader.

ImageNet alone holds grayscale JPEGs, CMYK JPEGs and a PNG named ``.JPEG``; phones write EXIF
rotation. PIL decodes by content, not extension; ``exif_transpose`` applies the rotation where
the labels do not depend on pixel positions (classification). COCO boxes and VOC masks are drawn
on the stored pixels (torchvision's ``CocoDetection`` and ``VOCSegmentation`` read them so), so
those loaders keep the stored orientation.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from backbones.errors import UserError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


class BadSampleWarning(UserWarning):
    """A sample skipped because its file is unreadable (``--on-bad-sample skip``)."""


def load_rgb(path: str | Path, exif_rotation: bool = True) -> np.ndarray:
    """Decode ``path`` to an HxWx3 uint8 array; an unreadable file is a UserError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            if exif_rotation:
                image = ImageOps.exif_transpose(image)
            if image.mode not in ("RGB", "L", "CMYK", "P", "RGBA", "LA", "YCbCr"):
                # 16-bit and float images: scale to 8 bits before the RGB conversion.
                array = np.asarray(image, dtype=np.float64)
                array = 255.0 * (array - array.min()) / max(1e-12, float(array.max() - array.min()))
                image = Image.fromarray(array.astype(np.uint8))
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"{path}: image file does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path}: unreadable image ({reason})") from None


def load_rgb_or_skip(path: str | Path, on_bad_sample: str) -> np.ndarray | None:
    """``load_rgb``, or ``None`` with a warning when bad samples are to be skipped."""
    try:
        return load_rgb(path)
    except UserError as error:
        if on_bad_sample != "skip":
            raise
        warnings.warn(f"skipping bad sample: {error}", BadSampleWarning, stacklevel=2)
        return None


# ImageNet statistics: every backbone's pretrained weights expect inputs normalised with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize(images: torch.Tensor) -> np.ndarray:
    """Normalised N x 3 x H x W tensors back to N x H x W x 3 uint8 pictures (for logged images)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = (images.detach().float().cpu() * std + mean).clamp(0, 1) * 255
    return pixels.permute(0, 2, 3, 1).round().to(torch.uint8).numpy()


def fit_canvas(image: torch.Tensor, size: int) -> torch.Tensor:
    """A square ``size`` input from an image of any size: shrunk to fit when larger (aspect kept), then
    padded with zeros (the mean pixel after normalisation), as DeepLab evaluates whole VOC images."""
    height, width = image.shape[-2:]
    if (height, width) == (size, size):
        return image
    if max(height, width) > size:
        height, width = fitted_size(height, width, size)
        image = torch.nn.functional.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    canvas = image.new_zeros(image.shape[0], size, size)
    canvas[:, :height, :width] = image
    return canvas


def fitted_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``height`` x ``width`` shrunk (aspect kept) so that its longer side is ``size``."""
    factor = size / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))
