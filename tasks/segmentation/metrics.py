"""Segmentation scores from a confusion matrix accumulated over the whole validation set.

PASCAL VOC's measure: per class IoU = TP / (TP + FP + FN) over all pixels of the set (not
averaged per image); mIoU is their mean over the classes that occur in the labels or predictions;
void pixels (255) count nowhere. torchmetrics' confusion matrix sums over DDP ranks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from tasks.segmentation.voc import VOID


def confusion_metric(num_classes: int) -> MulticlassConfusionMatrix:
    """Rows = true class, columns = predicted; void pixels ignored. Masks are checked when loaded,
    so the per-update argument validation (a full ``unique`` of every batch) is skipped."""
    return MulticlassConfusionMatrix(num_classes, ignore_index=VOID, validate_args=False)


def scores_from_confusion(confusion: torch.Tensor | np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """``miou`` and ``pixel_acc`` in percent, ``per_class_iou`` {name: percent, or None when the
    class is neither in the labels nor predicted}."""
    counts = np.asarray(
        confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64
    )
    true_positive = np.diag(counts)
    union = counts.sum(0) + counts.sum(1) - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = true_positive / union
    total = counts.sum()
    present = union > 0
    miou = 100.0 * float(np.nanmean(iou)) if present.any() else 0.0
    pixel_acc = 100.0 * float(true_positive.sum() / total) if total else 0.0
    names = [class_names[i] if i < len(class_names) else str(i) for i in range(len(iou))]
    per_class = {
        name: (100.0 * float(value) if ok else None)
        for name, value, ok in zip(names, iou, present, strict=True)
    }
    return {"miou": miou, "pixel_acc": pixel_acc, "per_class_iou": per_class}
