"""``bench eval --compare-float``: which layer of a quantized file costs the accuracy.

On the first ``images`` validation images, for each op of the integer path (``tasks.tflite.mixed``):

1. its errors (``tasks.tflite.layer_error``): isolated (the op in float on the integer path's own
   inputs, as TF's QuantizationDebugger), the kernel's offset from exact rounding, and accumulated
   (against the float graph, ``tasks.tflite.float_graph``, from the same image);
2. its output error alone: the float graph with only this op's output rounded to its grid, in
   percent of the integer path's output error (both against the float graph's raw outputs);
3. for the ``layers`` ops whose error alone is largest (all when ``layers`` is None), the task's
   metric (its own evaluator: top-1/top-5, COCO mAP, mIoU) and the percent of the integer path's
   output error left, beside the all-integer and the all-float metric, two ways:

   - kept in float: the op in float on its dequantized inputs, its output quantized to its own scale
     and zero point for the next integer op (what selective quantization deploys). With the file's
     dequantized weights this removes only the kernel's arithmetic (its offset from exact rounding);
   - unrounded: the op's output never rounded: the op and the ops reading it in float (through
     reshapes), their own outputs quantized for the next integer op. This removes the output's grid.

   MobileNetV1 0.25 (64 images, every layer): kept in float leaves 95-100 % of the output error for
   every layer (its kernels round exactly); unrounded, the first three layers leave 58, 79 and 89 %.

The ranking is a cheap guess: alone, MobileNetV1 0.25's layers add up to ~93 % and follow the
unrounded measure closely (32 images: correlation 0.97), while MobileNetV2's do not add up (the
first conv: 10 % alone, 19 % gone unrounded) and rank less well; ``layers=None`` measures every op.

Cost per image: the integer path twice (errors, then each chosen layer's two branches, each from its
layer on), the float graph once per op from that op on (~10x cheaper than integers). Metrics are
replayed from recorded outputs: the evaluator runs once per variant without recomputing anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from tasks.progress import tracked_datamodule
from tasks.tflite.layer_error import LayerError
from tasks.tflite.mixed import MixedTFLite, State

if TYPE_CHECKING:  # tasks.base imports tasks.tflite (Task.import_tflite): tasks and datamodules stay Any here
    from tasks.tflite.integer_model import IntegerTFLiteModel

# Ops that only move values (no arithmetic): a layer kept in float stays float through them.
PASS_THROUGH = ("RESHAPE", "QUANTIZE", "DEQUANTIZE")
# Ops that round nothing (their output is their input on the same grid): not probed, not ranked.
NO_ROUNDING = ("RESHAPE",)
Batches = list[list[torch.Tensor]]  # raw outputs (MixedTFLite.raw), one list per batch
# What each number of a row means (written into compare-float.json).
DEFINITIONS = {
    "kernel_mean_steps / kernel_off_pct": "the op's integer output minus the op run in float on the integer path's "
    "own inputs and rounded to the output's grid: mean in steps, and percent of values that differ",
    "mean_error_steps / rmse_steps / max_abs_error_steps": "the op's dequantized integer output minus the op run in "
    "float on the integer path's own dequantized inputs, in steps of the output's scale (isolated, layer-wise)",
    "isolated_sqnr_db": "10 log10 of that float output's power over the isolated error's",
    "accumulated_sqnr_db": "10 log10 of the float graph's tensor power over (integer - float graph) power, same images",
    "error_alone_pct": "the float graph with only this op's output rounded to its grid: its raw-output squared error "
    "against the float graph's, in percent of the integer path's (mean over raw outputs)",
    "kept_in_float": "the integer path with this op in float, its output quantized to its own scale and zero point: "
    "the task's metrics, their change from the integer path's, and the integer path's raw-output squared error "
    "left (against the float graph's), in percent",
    "unrounded": "the same with this op's output never rounded (the op and the ops reading it in float, their outputs "
    "quantized for the next integer op)",
}
VARIANTS = ("kept_in_float", "unrounded")


@dataclass
class FloatComparison:
    """The report: metrics of the all-integer and the all-float path, and one row per op."""

    file: str
    arithmetic: str
    images: int
    metric: str  # the task's headline metric (the table's column)
    integer: dict[str, float]
    float: dict[str, float]
    rows: list[dict[str, Any]]
    chosen: list[int]  # op indices that got kept-in-float metrics, largest error alone first
    wall_time_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return _finite({
            "file": self.file,
            "arithmetic": self.arithmetic,
            "images": self.images,
            "metric": self.metric,
            "metrics": {"integer": self.integer, "float": self.float},
            "kept_in_float_ops": self.chosen,
            "ranking": "error_alone_pct, highest first",
            "definitions": DEFINITIONS,
            "layers": self.rows,
            "wall_time_s": round(self.wall_time_s, 2),
        })


def compare_float(
    task: Any, model: IntegerTFLiteModel, datamodule: Any, *, images: int, layers: int | None
) -> FloatComparison:
    """Run the comparison on ``datamodule``'s (a ``tasks.base.BenchDataModule``) first ``images``
    validation images, scored by ``task``'s evaluator; ``layers``: how many ops get kept-in-float
    metrics (those whose error alone is largest), None for all."""
    started = time.perf_counter()
    mixed = MixedTFLite(model.engine)
    data = FirstImages(datamodule, images)
    evaluator = task.evaluator()
    errors = [LayerError() for _ in mixed.ops]
    rounding = {op.index: [0.0] * len(mixed.outputs) for op in mixed.ops if op.kind not in NO_ROUNDING}
    recorded: dict[str, Batches] = {"integer": [], "float": []}

    def errors_pass(x: torch.Tensor) -> Any:
        raw_integer, raw_float = _errors_of_batch(mixed, model.to_pixels(x), errors, rounding)
        recorded["integer"].append(raw_integer)
        recorded["float"].append(raw_float)
        return model.outputs(mixed.as_floats(raw_integer), x)

    integer = evaluator(_Scripted(model, errors_pass), tracked_datamodule(data, "compare-float: every layer's error"), False)
    floats = evaluator(_Replay(model, mixed, recorded["float"]), data, False)
    base = _output_error(mixed, recorded["integer"], recorded["float"])
    rows = [_row(mixed, position, e) for position, e in enumerate(errors)]
    for row in rows:
        row["error_alone_pct"] = _percent(rounding[row["op"]], base) if row["op"] in rounding else None
    ranked = sorted((r for r in rows if r["error_alone_pct"] is not None), key=lambda r: -r["error_alone_pct"])
    chosen = [r["op"] for r in ranked][: len(ranked) if layers is None else layers]

    _fill_in_float_variants(rows, evaluator, model, mixed, data, chosen, integer.metrics, recorded["float"], base)
    return FloatComparison(
        file=str(mixed.graph.path),
        arithmetic=model.engine.arithmetic,
        images=integer.images,
        metric=task.monitor,
        integer=dict(integer.metrics),
        float=dict(floats.metrics),
        rows=rows,
        chosen=chosen,
        wall_time_s=time.perf_counter() - started,
    )


def _fill_in_float_variants(rows: list[dict[str, Any]], evaluator: Any, model: IntegerTFLiteModel, mixed: MixedTFLite,
                            data: Any, chosen: list[int], integer_metrics: dict[str, float], float_outputs: Batches,
                            base: float) -> None:
    """For each chosen op, the integer path with it kept in float and with it unrounded: one more pass
    over the images branches every variant off the shared integer trunk, then each is replayed
    through the task's evaluator; its row gets the metrics and the output error left."""
    in_float = {(op, variant): frozenset({op}) if variant == "kept_in_float" else unrounded(mixed, op)
                for op in chosen for variant in VARIANTS}
    position_of = {op.index: position for position, op in enumerate(mixed.ops)}
    branches: dict[tuple[int, str], Batches] = {key: [] for key in in_float}

    def branches_pass(x: torch.Tensor) -> Any:
        for position, state in mixed.trunk(model.to_pixels(x)):
            for (op, variant), ops in in_float.items():
                if position_of[op] == position:
                    branches[op, variant].append(mixed.finish(state.branch(), position, ops))
        return model.outputs(mixed.as_floats(mixed.raw(state)), x)

    if chosen:
        branching = tracked_datamodule(data, f"compare-float: {len(chosen)} layers kept in float and unrounded")
        again = evaluator(_Scripted(model, branches_pass), branching, False)
        if again.metrics != integer_metrics:  # the same integer path twice: a nondeterministic loader
            raise RuntimeError(f"integer metrics differ between passes: {integer_metrics} vs {again.metrics}")
    for (op, variant), ops in in_float.items():
        metrics = evaluator(_Replay(model, mixed, branches[op, variant]), data, False).metrics
        rows[position_of[op]][variant] = {
            "ops_in_float": sorted(ops),
            "metrics": metrics,
            "delta": {k: v - integer_metrics[k] for k, v in metrics.items()},
            "output_error_left_pct": _percent(_output_error(mixed, branches[op, variant], float_outputs), base),
        }
        branches[op, variant] = []  # replayed: free the outputs


def unrounded(mixed: MixedTFLite, op_index: int) -> frozenset[int]:
    """The ops run in float to keep ``op_index``'s output unrounded: the op and its readers (through
    ops that only move values: a reshape's reader reads the float too)."""
    keep = {op_index}
    frontier = [next(op for op in mixed.ops if op.index == op_index).outputs[0]]
    while frontier:
        tensor = frontier.pop()
        for op in mixed.ops:
            if tensor in mixed.activations(op) and op.index not in keep:
                keep.add(op.index)
                if op.kind in PASS_THROUGH:
                    frontier.append(op.outputs[0])
    return frozenset(keep)


def _errors_of_batch(mixed: MixedTFLite, pixels: Any, errors: list[LayerError],
                     rounding: dict[int, list[float]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One batch through the integer path and the float graph side by side, each op also run in
    float on the integer path's inputs, and the float graph with each op's output alone rounded
    (squared output error added to ``rounding[op]``, one sum per raw output); returns both raw outputs."""
    every = frozenset(op.index for op in mixed.ops)
    reference = mixed.as_floats(mixed.run(pixels, every))
    trunk = mixed.start(pixels)
    shadow = State(real={mixed.engine.input: mixed.floats.dequantize_input(pixels)})
    with torch.no_grad():
        for position, op in enumerate(mixed.ops):
            isolated = mixed.floats.run_op(op, {i: mixed.as_float(i, trunk) for i in mixed.activations(op)})
            integer = mixed.step(position, trunk, False)
            graph = mixed.step(position, shadow, True)
            tensor = mixed.graph.tensors[op.outputs[0]]
            rounded = mixed.dequantize(tensor.index, mixed.quantize(tensor.index, isolated))
            errors[position].add(mixed.dequantize(tensor.index, integer), isolated, graph, tensor.scale, rounded)
            if op.index in rounding:
                probe = shadow.branch()
                probe.real[tensor.index] = mixed.dequantize(tensor.index, mixed.quantize(tensor.index, graph))
                outputs = mixed.as_floats(mixed.finish(probe, position + 1, every))
                for j, (out, ref) in enumerate(zip(outputs, reference, strict=True)):
                    rounding[op.index][j] += _squared(out, ref)
    return mixed.raw(trunk), mixed.raw(shadow)


def _squared(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a.double() - b.double()) ** 2).sum())


def _row(mixed: MixedTFLite, position: int, error: LayerError) -> dict[str, Any]:
    op = mixed.ops[position]
    info = mixed.graph.tensors[op.outputs[0]]
    return {
        "op": op.index,
        "kind": op.kind,
        "tensor": info.name,
        "shape": list(info.shape),
        "scale": info.scale,
        "zero_point": info.zero_point,
        **error.summary(info.scale),
        "error_alone_pct": None,
        "kept_in_float": None,
        "unrounded": None,
    }


def _output_error(mixed: MixedTFLite, batches: Batches, reference: Batches) -> list[float]:
    """Squared error of recorded raw outputs against the float graph's, one sum per raw output."""
    sums = [0.0] * len(mixed.outputs)
    for raw, ref in zip(batches, reference, strict=True):
        for j, (a, b) in enumerate(zip(mixed.as_floats(raw), mixed.as_floats(ref), strict=True)):
            sums[j] += _squared(a, b)
    return sums


def _percent(errors: list[float], base: list[float]) -> float:
    """``errors`` as a percent of the integer path's, averaged over the raw outputs (the SSD has two:
    scores and box codes, in different units)."""
    return sum(100.0 * e / b if b > 0 else 0.0 for e, b in zip(errors, base, strict=True)) / len(base)


def _finite(value: Any) -> Any:
    """JSON has no infinity: an SQNR of a layer without error is written as null."""
    if isinstance(value, float):
        return None if math.isinf(value) or math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class FirstImages:
    """A datamodule's first ``count`` validation images, batched as its own loader batches them;
    everything else (ground truth, canvas, class count) is the datamodule's."""

    def __init__(self, datamodule: Any, count: int) -> None:
        self._datamodule = datamodule
        self._count = count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._datamodule, name)

    def val_dataloader(self) -> DataLoader:
        loader = self._datamodule.val_dataloader()
        subset = Subset(loader.dataset, range(min(self._count, len(loader.dataset))))
        return DataLoader(subset, batch_size=loader.batch_size, collate_fn=loader.collate_fn, num_workers=loader.num_workers)


class _Scripted(nn.Module):
    """The integer model as the evaluator sees it (anchors, label map), its forward replaced."""

    def __init__(self, model: IntegerTFLiteModel, forward: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self._model = [model]  # a list: not registered as a submodule (no state is shared or moved)
        self._forward = forward
        for name in ("label_map", "num_classes"):
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))

    def anchors(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self._model[0].anchors(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> Any:
        return self._forward(x)


class _Replay(_Scripted):
    """Returns recorded raw outputs batch by batch (the evaluator reads the images in order)."""

    def __init__(self, model: IntegerTFLiteModel, mixed: MixedTFLite, batches: list[list[torch.Tensor]]) -> None:
        super().__init__(model, self._next)
        self._batches = iter(batches)
        self._mixed = mixed

    def _next(self, x: torch.Tensor) -> Any:
        raw = next(self._batches)
        if len(raw[0]) != len(x):
            raise RuntimeError(f"replayed batch of {len(raw[0])} images for a batch of {len(x)}")
        quantized = not any(t.is_floating_point() for t in raw)
        return self._model[0].outputs(self._mixed.as_floats(raw), x, quantized=quantized)
