"""Per-image confusion matrices of a segmenter on the val split (``bench eval``, bootstrap CIs)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tasks.base import BenchDataModule
from tasks.evaluate import PerImage
from tasks.segmentation.inference import forward_padded, groups_by_size
from tasks.segmentation.labels import VOID


def segmentation_evaluator(model: nn.Module, datamodule: BenchDataModule, keep: bool) -> PerImage:
    """mIoU from one confusion matrix over all images (VOC's measure, void ignored); the bootstrap
    resamples per-image confusion matrices and recomputes mIoU from their sum."""
    num_classes = datamodule.num_classes
    canvas = getattr(datamodule, "eval_canvas", None)
    resize = getattr(datamodule, "eval_resize", None)
    confusions: list[np.ndarray] = []
    predictions: list[np.ndarray] = []
    for batch in datamodule.val_dataloader():
        if batch is None:
            continue
        images, masks, sizes = batch
        if resize is not None:
            # The whole image resized to the model's input; the arg-max resized back (nearest).
            inputs = torch.cat([F.interpolate(images[i : i + 1, :, : int(h), : int(w)], size=(resize, resize),
                                              mode="bilinear", align_corners=False, antialias=True)
                                for i, (h, w) in enumerate(sizes.tolist())])
            groups = {None: (list(range(len(images))), _resized_back(model(inputs), sizes, images.shape[-2:]))}
        elif canvas is not None:
            # One fixed canvas (tf-deeplab: 513x513, padded bottom/right with 0 = the mean value).
            height, width = max(canvas, images.shape[-2]), max(canvas, images.shape[-1])
            padded = F.pad(images, (0, width - images.shape[-1], 0, height - images.shape[-2]))
            groups = {None: (list(range(len(images))), model(padded))}
        else:
            groups = {}
            for (h, w), indices in groups_by_size(sizes).items():
                groups[(h, w)] = (indices, forward_padded(model, images[indices][..., :h, :w]))
        for indices, logits in groups.values():
            labels = logits.argmax(1)
            for row, index in enumerate(indices):
                h, w = (int(v) for v in sizes[index])
                predicted = labels[row, :h, :w]
                truth = masks[index, :h, :w]
                keep_pixels = truth != VOID
                cells = truth[keep_pixels] * num_classes + predicted[keep_pixels]
                confusions.append(
                    torch.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes).numpy()
                )
                if keep:
                    predictions.append(predicted.numpy().astype(np.uint8))
    per_image = np.stack(confusions) if confusions else np.zeros((0, num_classes, num_classes), np.int64)
    total = per_image.sum(0)
    miou, pixel_acc = miou_of(total[None])[0], pixel_accuracy_of(total[None])[0]
    return PerImage(
        metrics={"miou": float(miou), "pixel_acc": float(pixel_acc)},
        images=len(per_image),
        resample={"miou": (per_image, miou_of), "pixel_acc": (per_image, pixel_accuracy_of)},
        predictions=predictions,
    )


def _resized_back(logits: torch.Tensor, sizes: torch.Tensor, canvas: tuple[int, int]) -> torch.Tensor:
    """One-hot maps of each image's arg-max resized (nearest) to its own size, on a ``canvas`` so
    the caller's ``argmax(1)`` and crop work as for the padded presets."""
    out = torch.zeros(len(logits), logits.shape[1], *canvas)
    for i, (h, w) in enumerate(sizes.tolist()):
        labels = F.interpolate(logits[i : i + 1].argmax(1, keepdim=True).float(), size=(h, w), mode="nearest").long()
        out[i, :, :h, :w].scatter_(0, labels[0], 1.0)
    return out


def miou_of(confusions: np.ndarray) -> np.ndarray:
    """mIoU (percent) of each [C, C] confusion matrix in a [B, C, C] stack, over the classes present
    in labels or predictions (as ``segmentation.metrics.scores_from_confusion``)."""
    counts = confusions.astype(np.float64)
    true_positive = np.diagonal(counts, axis1=1, axis2=2)
    union = counts.sum(1) + counts.sum(2) - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, true_positive / np.where(union > 0, union, 1), np.nan)
        return 100.0 * np.nanmean(iou, axis=1)


def pixel_accuracy_of(confusions: np.ndarray) -> np.ndarray:
    counts = confusions.astype(np.float64)
    total = counts.sum((1, 2))
    return 100.0 * np.diagonal(counts, axis1=1, axis2=2).sum(1) / np.maximum(total, 1)
