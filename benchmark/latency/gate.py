"""The accuracy gate: a runtime's outputs against eager fp32 on the task's validation data (MLPerf-style targets)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from tasks.facts import TASK_FACTS

# --------------------------------------------------------------------------------------------
# Accuracy gate: a runtime's outputs against eager fp32 on the task's validation data
# --------------------------------------------------------------------------------------------
MIN_REFERENCE = 1.0


def tensor_leaves(outputs: Any) -> list[torch.Tensor]:
    return [leaf for leaf in pytree.tree_leaves(outputs) if isinstance(leaf, torch.Tensor)]


class OutputComparison:
    """Running comparison of a runtime's raw outputs with eager's on the same batches."""

    def __init__(self, class_dim: int | None) -> None:
        self.class_dim = class_dim
        self.agree = 0
        self.total = 0
        self.max_abs_diff = 0.0

    def update(self, reference: Any, outputs: Any) -> None:
        ref_leaves, out_leaves = tensor_leaves(reference), tensor_leaves(outputs)
        if len(ref_leaves) != len(out_leaves):
            raise RuntimeError(f"runtime returned {len(out_leaves)} outputs, eager {len(ref_leaves)}")
        for ref, out in zip(ref_leaves, out_leaves, strict=True):
            if ref.shape != out.shape:
                raise RuntimeError(f"runtime output shape {tuple(out.shape)} differs from eager {tuple(ref.shape)}")
            if ref.numel():
                diff = (ref.float() - out.float()).abs().max().item()
                self.max_abs_diff = max(self.max_abs_diff, diff if math.isfinite(diff) else math.inf)
        if self.class_dim is not None and ref_leaves and ref_leaves[0].ndim > self.class_dim:
            # Tie-aware: the runtime's top class agrees when eager scores it (within float noise) as
            # high as its own top class; untrained heads emit exact ties that 1e-7 noise breaks.
            ref, out = ref_leaves[0].float(), out_leaves[0].float()
            chosen = ref.gather(self.class_dim, out.argmax(self.class_dim, keepdim=True)).squeeze(self.class_dim)
            tolerance = 1e-5 * (1.0 + ref.abs().max())
            same = chosen >= ref.amax(self.class_dim) - tolerance
            self.agree += int(same.sum())
            self.total += same.numel()

    def agreement(self) -> float | None:
        return 100.0 * self.agree / self.total if self.total else None


def _fingerprint(x: torch.Tensor) -> tuple:
    return (tuple(x.shape), float(x.float().sum()), float(x.float().abs().sum()))


class EagerReference:
    """Eager fp32 outputs per validation batch, computed once and kept within a memory budget.

    The gate calls ``task.evaluate_callable`` once for eager and once per runtime; the batches come
    in the same order, so a runtime's outputs on batch i are compared with eager's on batch i
    (recomputed when they did not fit in the budget or the batch differs).
    """

    def __init__(self, model: nn.Module, budget_bytes: int = 256 * 2**20) -> None:
        self.model = model
        self.budget = budget_bytes
        self.used = 0
        self.cache: dict[int, tuple[tuple, Any]] = {}
        self.metrics: dict[str, Any] | None = None

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> Any:
        return pytree.tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, self.model(x))

    def recording_forward(self) -> Callable[[torch.Tensor], Any]:
        index = iter(range(1 << 62))

        def forward(x: torch.Tensor) -> Any:
            i = next(index)
            out = self.forward(x)
            size = sum(t.numel() * t.element_size() for t in tensor_leaves(out))
            if self.used + size <= self.budget:
                self.cache[i] = (_fingerprint(x), out)
                self.used += size
            return out

        return forward

    def get(self, i: int, x: torch.Tensor) -> Any:
        cached = self.cache.get(i)
        if cached is not None and cached[0] == _fingerprint(x):
            return cached[1]
        return self.forward(x)


def fixed_batch(forward: Callable[[torch.Tensor], Any], batch_size: int) -> Callable[[torch.Tensor], Any]:
    """Feed a runtime prepared for a static batch: split, pad the last chunk, concatenate back."""

    def run(x: torch.Tensor) -> Any:
        pieces = []
        for chunk in x.split(batch_size):
            n = chunk.shape[0]
            if n < batch_size:
                chunk = torch.cat([chunk, chunk[-1:].expand(batch_size - n, *chunk.shape[1:])])
            out = forward(chunk)
            pieces.append(pytree.tree_map(lambda t, n=n: t[:n] if isinstance(t, torch.Tensor) else t, out))
        if len(pieces) == 1:
            return pieces[0]
        leaves, spec = zip(*(pytree.tree_flatten(p) for p in pieces), strict=True)
        joined = [torch.cat(column) if isinstance(column[0], torch.Tensor) else column[0] for column in zip(*leaves, strict=True)]
        return pytree.tree_unflatten(joined, spec[0])

    return run


@dataclass(frozen=True)
class GateResult:
    metric: str | None
    value: float | None
    reference: float | None
    ratio: float | None
    threshold: float | None
    agreement: float | None
    max_abs_diff: float | None
    images: int | None
    flagged: bool | None
    basis: str | None
    note: str | None = None


def gate_target(task_name: str) -> float | None:
    """The fraction of the fp32 metric a runtime must keep (the per-task facts table), if the task has one."""
    facts = TASK_FACTS.get(task_name)
    return facts.gate_target if facts else None


def gate_verdict(task_name: str, metric: str, value: float, reference: float, agreement: float | None) -> tuple[float | None, bool | None, str | None]:
    """Ratio to fp32 and the flag: the metric ratio when the reference means something, else label
    agreement with eager (untrained models on synthetic data score ~0, so a ratio is undefined)."""
    threshold = gate_target(task_name)
    ratio = value / reference if reference >= MIN_REFERENCE else None
    if threshold is None:
        return ratio, None, None
    if ratio is not None:
        return ratio, ratio < threshold, f"{metric} ratio"
    if agreement is not None:
        return None, agreement < 100.0 * threshold, "agreement"
    return None, None, None


def gate_class_mismatch(task_name: str, model_classes: int, data_classes: int | None) -> str | None:
    """Why the gate cannot score this model on this data (class counts differ), or None.

    Class indices are labels for classification, so a wider head still scores; detection and
    segmentation map predicted classes onto the dataset's, which needs the same count.
    """
    if data_classes is None or data_classes == model_classes:
        return None
    if task_name == "classification" and data_classes < model_classes:
        return None
    return f"no gate: the model has {model_classes} classes, the data {data_classes} (pass --num-classes {data_classes})"


def run_gate(
    task: Any,
    cfg: dict[str, Any],
    reference: EagerReference,
    forward: Callable[[torch.Tensor], Any] | None,
    max_images: int,
) -> GateResult:
    """Evaluate ``forward`` (``None``: eager itself) on the validation data and compare with eager."""
    metric = task.monitor
    try:
        if reference.metrics is None:
            reference.metrics = task.evaluate_callable(reference.recording_forward(), cfg, max_images)
        if forward is None:
            value = float(reference.metrics[metric])
            return GateResult(metric, value, value, None, None, None, None, reference.metrics.get("images"), False, "reference")
        facts = TASK_FACTS.get(task.name)
        comparison = OutputComparison(facts.class_dim if facts else None)
        index = iter(range(1 << 62))

        def paired(x: torch.Tensor) -> Any:
            i = next(index)
            out = forward(x)
            comparison.update(reference.get(i, x), out)
            return out

        metrics = task.evaluate_callable(paired, cfg, max_images)
    except NotImplementedError:
        return GateResult(None, None, None, None, None, None, None, None, None, None, f"task {task.name!r} has no evaluate_callable")
    value, ref = float(metrics[metric]), float(reference.metrics[metric])
    agreement = comparison.agreement()
    ratio, flagged, basis = gate_verdict(task.name, metric, value, ref, agreement)
    return GateResult(
        metric, value, ref, ratio, gate_target(task.name), agreement, comparison.max_abs_diff,
        metrics.get("images"), flagged, basis,
    )


