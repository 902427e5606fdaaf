"""A quantized file run in integers with chosen ops in float: what selective quantization deploys.

An op kept in float takes its inputs dequantized (or as floats, when a float op made them) and runs
in float32 with the file's dequantized weights (``tasks.tflite.float_graph``); an integer op that
reads a float tensor reads it quantized to that tensor's own scale and zero point, as the QUANTIZE
op a converter puts at the border would. No op in float: the integer path bit for bit
(``tasks.tflite.int8``). Every op in float: the float graph.

Execution can start from any op with the tensors live there (``State``), so a comparison runs the
integer path once and branches off it for each variant (``tasks.tflite.compare``); tensors are
dropped after their last reader, so a branch holds only what is live.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from backbones.errors import UserError
from tasks.tflite.float_graph import FloatTFLite
from tasks.tflite.int8 import INT_RANGES, QuantizedTFLite
from tasks.tflite.reader import TFLiteOp


@dataclass
class State:
    """The tensors live before an op: integer ones (float32 holding the stored integers, as
    ``QuantizedTFLite`` holds them) and float ones (made by ops kept in float)."""

    integer: dict[int, torch.Tensor] = field(default_factory=dict)
    real: dict[int, torch.Tensor] = field(default_factory=dict)

    def branch(self) -> State:
        """A copy to run on: the tensors are shared (no op writes into one), the dicts are not."""
        return State(dict(self.integer), dict(self.real))


class MixedTFLite:
    """``run(pixels, float_ops)`` -> the raw outputs (``QuantizedTFLite.raw_outputs``), float."""

    def __init__(self, engine: QuantizedTFLite) -> None:
        self.engine = engine
        self.graph = engine.graph
        self.floats = FloatTFLite(engine.graph)
        self.outputs, self.final_op = engine.raw_outputs()
        self.ops: tuple[TFLiteOp, ...] = engine.ops_to_raw()
        self.last_use: dict[int, int] = {}
        for position, op in enumerate(self.ops):
            for tensor in self.activations(op):
                self.last_use[tensor] = position

    def activations(self, op: TFLiteOp) -> list[int]:
        """The op's inputs that are tensors computed at run time (not constants)."""
        return [i for i in op.inputs if i >= 0 and i not in self.graph.stored]

    # -- one tensor's two forms ----------------------------------------------------------------
    def dequantize(self, index: int, values: torch.Tensor) -> torch.Tensor:
        return self.engine.dequantize(index, values)

    def quantize(self, index: int, values: torch.Tensor) -> torch.Tensor:
        """``round(x / scale) + zero_point`` (half away from zero), clamped to the tensor's type."""
        info = self.graph.tensors[index]
        if not info.scale or info.dtype not in INT_RANGES:
            raise UserError(f"{self.graph.path}: tensor {index} ({info.name}) has no 8-bit quantization; "
                            "an integer op cannot read it")
        scaled = values.double() / info.scale
        rounded = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)
        return (rounded + info.zero_point).clamp(*INT_RANGES[info.dtype]).float()

    def as_float(self, index: int, state: State) -> torch.Tensor:
        return state.real[index] if index in state.real else self.dequantize(index, state.integer[index])

    def as_integer(self, index: int, state: State) -> torch.Tensor:
        if index not in state.integer:
            state.integer[index] = self.quantize(index, state.real[index])
        return state.integer[index]

    # -- running ---------------------------------------------------------------------------------
    def start(self, pixels: np.ndarray) -> State:
        """The state before the first op: the file's input bytes."""
        return State(integer={self.engine.input: torch.from_numpy(np.asarray(pixels)).float()})

    def step(self, position: int, state: State, in_float: bool) -> torch.Tensor:
        """Run the op at ``position`` on ``state`` (in float or in integers), store its output, drop
        the tensors no later op reads; returns the output."""
        op = self.ops[position]
        if in_float:
            inputs = {i: self.as_float(i, state) for i in self.activations(op)}
            out = state.real[op.outputs[0]] = self.floats.run_op(op, inputs)
        else:
            for i in self.activations(op):
                self.as_integer(i, state)
            out = state.integer[op.outputs[0]] = self.engine.run_op(op, state.integer)
        self.release(position, state)
        return out

    def release(self, position: int, state: State) -> None:
        for tensor in self.activations(self.ops[position]):
            if self.last_use.get(tensor, -1) <= position and tensor not in self.outputs:
                state.integer.pop(tensor, None)
                state.real.pop(tensor, None)

    @torch.no_grad()
    def finish(self, state: State, start: int, float_ops: Collection[int] = ()) -> list[torch.Tensor]:
        """Run the ops from position ``start`` on (those whose ``index`` is in ``float_ops`` in float)
        and return the raw outputs (``raw``)."""
        for position in range(start, len(self.ops)):
            self.step(position, state, self.ops[position].index in float_ops)
        return self.raw(state)

    def run(self, pixels: np.ndarray, float_ops: Collection[int] = ()) -> list[torch.Tensor]:
        """The whole graph with ``float_ops`` (op indices) in float, the rest in integers."""
        return self.finish(self.start(pixels), 0, float_ops)

    def raw(self, state: State) -> list[torch.Tensor]:
        """The raw outputs as computed: float32 where a float op made them, else the stored integers
        in the tensor's own 8-bit type (a quarter of float32's memory: comparisons keep many)."""
        narrow = {"uint8": torch.uint8, "int8": torch.int8}
        return [state.real[i] if i in state.real else state.integer[i].to(narrow[self.graph.tensors[i].dtype])
                for i in self.outputs]

    def as_floats(self, raw: list[torch.Tensor]) -> list[torch.Tensor]:
        """``raw`` outputs as floats: the integer ones dequantized."""
        return [t if t.is_floating_point() else self.dequantize(i, t.float()) for i, t in zip(self.outputs, raw, strict=True)]

    def trunk(self, pixels: np.ndarray) -> Iterator[tuple[int, State]]:
        """The all-integer path, yielding ``(position, state)`` before each op, then
        ``(len(ops), final state)``; a caller may branch the state and run a variant from there."""
        state = self.start(pixels)
        with torch.no_grad():
            for position in range(len(self.ops)):
                yield position, state
                self.step(position, state, False)
        yield len(self.ops), state
