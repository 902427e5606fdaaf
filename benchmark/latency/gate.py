"""The accuracy gate: a runtime's outputs against eager fp32 on the task's validation data (MLPerf-style targets)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from benchmark.runs.schema import GateResult
from tasks.facts import TASK_FACTS, weak_reference


# --------------------------------------------------------------------------------------------
# Accuracy gate: a runtime's outputs against eager fp32 on the task's validation data
# --------------------------------------------------------------------------------------------
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


# Verdicts of a non-reference runtime: it passes only when every target is met against a reference
# strong enough to judge; a weak reference gives "not judged", which never passes.
PASS, FAIL, NOT_JUDGED, REFERENCE = "pass", "fail", "not judged", "reference"


@dataclass(frozen=True)
class Verdict:
    ratio: float | None
    verdict: str | None
    flagged: bool | None
    basis: str | None
    reason: str | None = None


def gate_target(task_name: str) -> float | None:
    """The fraction of the fp32 metric a runtime must keep (the per-task facts table), if the task has one."""
    facts = TASK_FACTS.get(task_name)
    return facts.gate_target if facts else None


def gate_verdict(
    task_name: str, metric: str, value: float, reference: float, agreement: float | None, num_classes: int
) -> Verdict:
    """Judge a runtime: its metric ratio to eager fp32 AND its label agreement with eager must reach the
    task's targets (detection: the COCO mAP ratio alone). Against a reference too weak to mean
    anything (``tasks.facts.weak_reference``: below a floor or 2x chance) the row is not judged."""
    facts = TASK_FACTS.get(task_name)
    ratio = value / reference if reference > 0 else None
    if facts is None:
        return Verdict(ratio, None, None, None)
    basis = f"{metric} ratio" + (" and agreement" if facts.agreement_target is not None else "")
    weak = weak_reference(task_name, reference, num_classes)
    if weak:
        return Verdict(ratio, NOT_JUDGED, True, basis, weak)
    missed = []
    if ratio is None or ratio < facts.gate_target:
        missed.append(f"{metric} ratio {ratio:.3f} < {facts.gate_target:g}" if ratio is not None else f"{metric} ratio undefined")
    if facts.agreement_target is not None:
        if agreement is None:
            missed.append("agreement not measured")
        elif agreement < facts.agreement_target:
            missed.append(f"agreement {agreement:.1f} % < {facts.agreement_target:g} %")
    return Verdict(ratio, FAIL if missed else PASS, bool(missed), basis, "; ".join(missed) or None)


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
    # The one decoder of the measured model (an imported file's anchors and post-processing): every
    # runtime's raw outputs are decoded as eager's and as `bench eval`'s.
    decoder = task.decoder(reference.model, cfg)
    try:
        if reference.metrics is None:
            reference.metrics = task.evaluate_callable(reference.recording_forward(), cfg, max_images, decoder=decoder)
        if forward is None:
            value = float(reference.metrics[metric])
            return GateResult(metric, value, value, None, None, None, None, reference.metrics.get("images"), False,
                              REFERENCE, verdict=REFERENCE)
        facts = TASK_FACTS.get(task.name)
        comparison = OutputComparison(facts.class_dim if facts else None)
        index = iter(range(1 << 62))

        def paired(x: torch.Tensor) -> Any:
            i = next(index)
            out = forward(x)
            comparison.update(reference.get(i, x), out)
            return out

        metrics = task.evaluate_callable(paired, cfg, max_images, decoder=decoder)
    except NotImplementedError:
        return GateResult(note=f"task {task.name!r} has no evaluate_callable")
    value, ref = float(metrics[metric]), float(reference.metrics[metric])
    agreement = comparison.agreement()
    judged = gate_verdict(task.name, metric, value, ref, agreement, int(cfg.get("num_classes") or 0))
    facts = TASK_FACTS.get(task.name)
    return GateResult(
        metric, value, ref, judged.ratio, gate_target(task.name), agreement, comparison.max_abs_diff,
        metrics.get("images"), judged.flagged, judged.basis, verdict=judged.verdict,
        agreement_target=facts.agreement_target if facts else None, reason=judged.reason,
    )


@dataclass(frozen=True)
class AccuracyGate:
    """The gate as every runtime meets it, local or on a device: the validation config, eager's
    outputs, and ``note`` when the gate cannot score this model on this data."""

    task: Any
    cfg: dict[str, Any]
    reference: EagerReference
    max_images: int
    note: str | None = None

    def judge(self, forward: Callable[[torch.Tensor], Any] | None) -> GateResult:
        """``forward``'s verdict (``None``: eager itself), or the note saying why there is none."""
        if self.note:
            return GateResult(note=self.note)
        return run_gate(self.task, self.cfg, self.reference, forward, self.max_images)


def accuracy_gate(task: Any, cfg: dict[str, Any], images: Any, reference: EagerReference, max_images: int,
                  batch_size: int = 1) -> AccuracyGate | None:  # fmt: skip
    """The gate's set-up, or None where there is no gate (no images asked for, no validation data).

    A label map (the official SSD's COCO 90-id map) ties the model's classes to the data's
    categories, so only without one are the class counts compared. The gate's batches hold at least
    8 images (``batch_size`` when larger) and are loaded in this process (no workers).
    """
    if max_images <= 0 or images.dataset is None:
        return None
    label_map = getattr(task.parse_options(cfg), "label_map", None)  # detection's options have one
    data_classes = None if label_map else images.num_classes
    mismatch = gate_class_mismatch(task.name, int(cfg["num_classes"]), data_classes)
    gate_cfg = dict(cfg, num_workers=0, batch_size=max(batch_size, 8))
    return AccuracyGate(task, gate_cfg, reference, max_images, mismatch)
