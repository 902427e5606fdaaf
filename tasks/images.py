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
