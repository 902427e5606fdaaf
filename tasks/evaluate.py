"""Evaluate a model on a datamodule's validation split, without training.

Each task registers a function that runs the model over the split and returns per-image
statistics; ``evaluate`` turns them into metrics in percent and 95 % bootstrap confidence intervals
over images (resampling images with replacement, so the interval says how much the number would
move on another draw of the same number of images). Detection registers its own evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tasks.base import BenchDataModule

BOOTSTRAP_SAMPLES = 1000


@dataclass
class PerImage:
    """What an evaluator measured: point metrics (percent), the image count, and per-image data the
    bootstrap resamples: ``{metric: (per-image array [N, ...], statistic(resampled sums) -> percent)}``."""

    metrics: dict[str, float]
    images: int
    resample: dict[str, tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]] = field(default_factory=dict)
    predictions: list[Any] = field(default_factory=list)


@dataclass
class EvalResult:
    """Metrics in percent, the number of images, 95 % bootstrap intervals ``{metric: (low, high)}``
    and, when asked for, each image's prediction (classification: top-1 index; segmentation: the
    HxW class map)."""

    task: str
    metrics: dict[str, float]
    images: int
    ci95: dict[str, tuple[float, float]]
    predictions: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "metrics": dict(self.metrics),
            "images": self.images,
            "ci95": {k: [low, high] for k, (low, high) in self.ci95.items()},
            "ci_method": f"percentile bootstrap over images, {BOOTSTRAP_SAMPLES} resamples",
        }


Evaluator = Callable[[nn.Module, BenchDataModule, bool], PerImage]
EVALUATORS: dict[str, Evaluator] = {}


def register_evaluator(task: str, evaluator: Evaluator) -> None:
    EVALUATORS[task] = evaluator


@torch.no_grad()
def evaluate(
    task: str,
    model: nn.Module,
    datamodule: BenchDataModule,
    *,
    keep_predictions: bool = False,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> EvalResult:
    """Run ``model`` (eval mode) over ``datamodule``'s val split; metrics in percent with 95 % CIs."""
    if task not in EVALUATORS:
        raise ValueError(f"no evaluator for task {task!r} (have: {', '.join(sorted(EVALUATORS))})")
    datamodule.prepare_data()
    datamodule.setup("validate")
    was_training = model.training
    model.eval()
    try:
        measured = EVALUATORS[task](model, datamodule, keep_predictions)
    finally:
        model.train(was_training)
    ci = {name: bootstrap_ci(values, statistic, bootstrap, seed) for name, (values, statistic) in measured.resample.items()}
    return EvalResult(task, measured.metrics, measured.images, ci, measured.predictions)


def bootstrap_ci(
    per_image: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], samples: int, seed: int = 0
) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of ``statistic`` over ``samples`` resamples of the images.

    ``per_image`` is [N, ...]; a resample is a vector of N counts (multinomial), so the resampled
    sums are one matrix product and ``statistic`` maps [samples, ...] sums to values in percent.
    """
    n = len(per_image)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=samples).astype(np.float64)
    sums = counts @ per_image.reshape(n, -1).astype(np.float64)
    values = statistic(sums.reshape(samples, *per_image.shape[1:]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


# -- classification --------------------------------------------------------------------------------


def classification_evaluator(model: nn.Module, datamodule: BenchDataModule, keep: bool) -> PerImage:
    top1: list[np.ndarray] = []
    top5: list[np.ndarray] = []
    predictions: list[int] = []
    for batch in datamodule.val_dataloader():
        if batch is None:
            continue
        images, labels = batch
        logits = model(images)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1.append((top[:, 0] == labels).numpy())
        top5.append((top == labels[:, None]).any(1).numpy())
        if keep:
            predictions.extend(top[:, 0].tolist())
    hits1 = np.concatenate(top1) if top1 else np.zeros(0, bool)
    hits5 = np.concatenate(top5) if top5 else np.zeros(0, bool)
    n = len(hits1)

    def rate(sums: np.ndarray) -> np.ndarray:
        return 100.0 * sums / n

    return PerImage(
        metrics={"top1": 100.0 * hits1.mean() if n else 0.0, "top5": 100.0 * hits5.mean() if n else 0.0},
        images=n,
        resample={"top1": (hits1.astype(np.float64), rate), "top5": (hits5.astype(np.float64), rate)},
        predictions=predictions,
    )


# -- segmentation ----------------------------------------------------------------------------------


def segmentation_evaluator(model: nn.Module, datamodule: BenchDataModule, keep: bool) -> PerImage:
    """mIoU from one confusion matrix over all images (VOC's measure, void ignored); the bootstrap
    resamples per-image confusion matrices and recomputes mIoU from their sum."""
    from tasks.segmentation.inference import forward_padded, groups_by_size
    from tasks.segmentation.voc import VOID

    num_classes = datamodule.num_classes
    canvas = getattr(datamodule, "eval_canvas", None)
    confusions: list[np.ndarray] = []
    predictions: list[np.ndarray] = []
    for batch in datamodule.val_dataloader():
        if batch is None:
            continue
        images, masks, sizes = batch
        if canvas is not None:
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


register_evaluator("classification", classification_evaluator)
register_evaluator("segmentation", segmentation_evaluator)


def _detection_evaluator(model: nn.Module, datamodule: BenchDataModule, keep: bool) -> PerImage:
    from tasks.detection.bootstrap import detection_evaluator

    return detection_evaluator(model, datamodule, keep)


register_evaluator("detection", _detection_evaluator)
