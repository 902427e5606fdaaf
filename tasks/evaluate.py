"""Evaluate a model on a datamodule's validation split, without training.

Each task registers a function that runs the model over the split and returns per-image
statistics; ``evaluate`` turns them into metrics in percent and 95 % bootstrap confidence intervals
over images (resampling images with replacement, so the interval says how much the number would
move on another draw of the same number of images). Detection registers its own evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tasks.base import BenchDataModule
from tasks.progress import tracked_datamodule

if TYPE_CHECKING:
    from tasks.base import Task

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


# What each task's ``Task.evaluator()`` returns: (model, datamodule, keep predictions) -> PerImage.
Evaluator = Callable[[nn.Module, BenchDataModule, bool], PerImage]


@torch.no_grad()
def evaluate(
    task: Task,
    model: nn.Module,
    datamodule: BenchDataModule,
    *,
    keep_predictions: bool = False,
    bootstrap: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> EvalResult:
    """Run ``model`` (eval mode) over ``datamodule``'s val split; metrics in percent with 95 % CIs."""
    evaluator = task.evaluator()
    datamodule.prepare_data()
    datamodule.setup("validate")
    was_training = model.training
    model.eval()
    try:
        measured = evaluator(model, tracked_datamodule(datamodule, f"evaluate {task.name}"), keep_predictions)
    finally:
        model.train(was_training)
    ci = {name: bootstrap_ci(values, statistic, bootstrap, seed) for name, (values, statistic) in measured.resample.items()}
    return EvalResult(task.name, measured.metrics, measured.images, ci, measured.predictions)


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
