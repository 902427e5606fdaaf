"""Per-image top-1 / top-5 hits of a classifier on the val split (``bench eval``, bootstrap CIs)."""

from __future__ import annotations

import numpy as np
from torch import nn

from tasks.base import BenchDataModule
from tasks.evaluate import PerImage


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
