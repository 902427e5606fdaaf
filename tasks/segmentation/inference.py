"""Whole-image inference: each image at its own size, optionally multi-scale and flipped (the paper's MF)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# Every registered backbone's nominal stride divides 32: padding to it keeps the feature grid aligned.
PAD_MULTIPLE = 32
# The scales of the V2 paper's MF rows (DeepLabv3's eval_scales for PASCAL, section 4.3).
MF_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

Forward = Callable[[torch.Tensor], torch.Tensor]


def forward_padded(forward: Forward, images: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Logits at the images' own size: pad bottom/right with 0 (the mean pixel after
    normalisation) to a multiple of ``multiple``, run, crop back."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    padded = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
    return forward(padded)[..., :height, :width]


def segment(
    forward: Forward, images: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False
) -> torch.Tensor:
    """Class scores (N, C, H, W) for same-size normalised images.

    One scale without flip returns the logits. Otherwise the softmax probabilities of every
    rescaled (and left-right flipped) input, resized back, are averaged, as TF DeepLab's
    ``predict_labels_multi_scale`` does.
    """
    height, width = images.shape[-2:]
    if tuple(scales) == (1.0,) and not flip:
        return forward_padded(forward, images)
    total = None
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = (
            images
            if size == (height, width)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        for flipped in (False, True) if flip else (False,):
            inputs = scaled.flip(-1) if flipped else scaled
            logits = forward_padded(forward, inputs)
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probs = logits.softmax(1)
            total = probs if total is None else total + probs
    return total / (len(scales) * (2 if flip else 1))


def groups_by_size(sizes: torch.Tensor) -> dict[tuple[int, int], list[int]]:
    """Indices of a padded batch grouped by each image's own (height, width)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (height, width) in enumerate(sizes.tolist()):
        groups.setdefault((int(height), int(width)), []).append(index)
    return groups
