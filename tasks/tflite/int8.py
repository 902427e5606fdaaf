"""Integer-faithful execution of a quantized ``.tflite`` file in PyTorch.

The float import (``tasks.tflite.importer``) runs the dequantized weights in float: the deployed model's
float shadow. This runs the file's own integer graph: uint8/int8 tensors with per-tensor or
per-channel scales and zero points, int32 accumulators, TFLite's requantization
(``MultiplyByQuantizedMultiplier``, ``tasks.tflite.fixed_point``; ties toward +inf for CONV_2D and
MEAN), fused ReLU/ReLU6 as activation min/max clamps, quantized ADD (left shift 20, per-input
multipliers), average pooling, MEAN, RESIZE_BILINEAR, CONCATENATION, QUANTIZE, LOGISTIC and RESHAPE.
``arithmetic="xnnpack"`` swaps in XNNPACK's requantization, ADD, QUANTIZE and SOFTMAX
(``tasks.tflite.xnnpack``): what LiteRT's default interpreter computes. Execution stops at the
file's raw outputs (``raw_outputs``: the inputs of its SOFTMAX / ARG_MAX /
TFLite_Detection_PostProcess), returned dequantized: what the suite's evaluation takes.

A batch runs through each op at once. Inside ``run`` a tensor is float32 holding its stored integers
less its zero point (exact: 9-bit values; "centered"), NHWC as TFLite lays it out: convolutions
(``tasks.tflite.integer_conv``, most of the work) read it as channels-last float32 without a copy
and write it the same way; the smaller ops compute on the stored integers in int64. Tensors are
dropped after their last reader unless ``run(keep=True)``. What ``run`` and ``run_op`` hand out and
take is the stored integers, in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from backbones.errors import UserError
from tasks.tflite import xnnpack
from tasks.tflite.fixed_point import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_ties_up,
    quantize_multiplier,
    tflite_round,
    trunc_div,
)
from tasks.tflite.integer_conv import INT_RANGES, IntegerConv
from tasks.tflite.outputs import POSTPROCESS_OPS
from tasks.tflite.reader import TFLiteGraph, TFLiteOp, read_tflite

ARITHMETICS = ("tflite", "xnnpack")
# The ops whose XNNPACK results were matched bit for bit (tasks/tflite/xnnpack.py); others refuse.
XNNPACK_MATCHED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "CONCATENATION",
                   "RESIZE_BILINEAR", "QUANTIZE", "LOGISTIC")
# A chunk's largest activation (float32) stays about this size, within a core's share of the cache
# (``QuantizedTFLite.run``): MobileNetV2-224 runs 3 images at a time, DeepLab-513 one.
CHUNK_BYTES = 16 << 20
# Elementwise ops of one or two 8-bit tensors: run as tables of their own integer kernel (``by_table``).
ELEMENTWISE = ("ADD", "QUANTIZE", "LOGISTIC")
ACTIVATION_BOUNDS = {0: None, 1: (0.0, None), 3: (0.0, 6.0)}  # fused NONE, RELU, RELU6


class QuantizedTFLite:
    """A quantized file run op by op in integers; ``run(pixels uint8 NHWC)`` -> raw float outputs."""

    def __init__(self, path: str | Path | TFLiteGraph, *, arithmetic: str = "tflite") -> None:
        if arithmetic not in ARITHMETICS:
            raise ValueError(f"arithmetic {arithmetic!r}: one of {', '.join(ARITHMETICS)}")
        self.arithmetic = arithmetic  # "tflite": TFLite's builtin kernels; "xnnpack": LiteRT's default delegate
        self.graph = path if isinstance(path, TFLiteGraph) else read_tflite(path)
        self.path = self.graph.path
        self.input = self.graph.inputs[0]
        if self.graph.input.dtype not in INT_RANGES:
            raise UserError(f"{self.path}: input is {self.graph.input.dtype}; "
                            "integer execution needs a quantized (uint8/int8) file")
        self._convs: dict[int, IntegerConv] = {}  # op index -> prepared on first use
        self._tables: dict[int, torch.Tensor] = {}  # op index -> its table (``by_table``)

    # -- quantization parameters --------------------------------------------------------------
    def qparams(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        tensor = self.graph.tensors[index]
        return np.asarray(tensor.scales, np.float64), np.asarray(tensor.zero_points, np.int64), tensor.dtype

    def activation_range(self, index: int, fused: int) -> tuple[int, int]:
        """``CalculateActivationRangeQuantized``: the fused activation as integer clamps."""
        scales, zero_points, dtype = self.qparams(index)
        low, high = INT_RANGES[dtype]
        bounds = ACTIVATION_BOUNDS.get(fused)
        if bounds is None:
            return low, high
        scale, zp = np.float32(scales[0]), int(zero_points[0])
        low = max(low, zp + int(tflite_round(np.float32(bounds[0]) / scale)))
        if bounds[1] is not None:
            high = min(high, zp + int(tflite_round(np.float32(bounds[1]) / scale)))
        return low, high

    def value(self, index: int, env: dict[int, torch.Tensor]) -> torch.Tensor:
        """Tensor ``index`` (int64): computed (``env``) or a constant of the file."""
        return env[index] if index in env else torch.from_numpy(self.graph.stored[index].astype(np.int64))

    # -- ops ------------------------------------------------------------------------------------
    def zero_point(self, index: int) -> int:
        return int(self.graph.tensors[index].zero_point)

    def conv(self, op: TFLiteOp, env: dict) -> torch.Tensor:
        if op.index not in self._convs:
            bounds = self.activation_range(op.outputs[0], int(op.options.get("fusedActivationFunction", 0)))
            self._convs[op.index] = IntegerConv(self.graph, op, self.arithmetic, bounds)
        return self._convs[op.index](env[op.inputs[0]])

    def add(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        (s1, z1, _), (s2, z2, _), (so, zo, _) = (self.qparams(i) for i in (*inputs, output))
        if self.arithmetic == "xnnpack":
            low, high = self.activation_range(output, int(options.get("fusedActivationFunction", 0)))
            quant = ((float(s1[0]), int(z1[0])), (float(s2[0]), int(z2[0])), (float(so[0]), int(zo[0])))
            return xnnpack.add(self.value(inputs[0], env), self.value(inputs[1], env), quant, low, high)
        left_shift = 20
        twice_max = 2 * max(float(s1[0]), float(s2[0]))
        m1, e1 = quantize_multiplier(float(s1[0]) / twice_max)
        m2, e2 = quantize_multiplier(float(s2[0]) / twice_max)
        mo, eo = quantize_multiplier(twice_max / ((1 << left_shift) * float(so[0])))
        a = (self.value(inputs[0], env) - int(z1[0])) * (1 << left_shift)
        b = (self.value(inputs[1], env) - int(z2[0])) * (1 << left_shift)
        t = torch.tensor
        total = multiply_by_quantized_multiplier(a, t(m1), t(e1)) + multiply_by_quantized_multiplier(b, t(m2), t(e2))
        out = multiply_by_quantized_multiplier(total, t(mo), t(eo)) + int(zo[0])
        low, high = self.activation_range(output, int(options.get("fusedActivationFunction", 0)))
        return out.clamp(low, high)

    def average_pool(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        x = env[inputs[0]]
        kh, kw = int(options["filterHeight"]), int(options["filterWidth"])
        sh, sw = int(options["strideH"]), int(options["strideW"])
        if options["padding"] != 1 and not (kh == x.shape[1] and kw == x.shape[2]):
            raise UserError(f"{self.path}: AVERAGE_POOL_2D with SAME padding is not supported by integer execution")
        total = F.avg_pool2d(x.permute(0, 3, 1, 2).double(), (kh, kw), (sh, sw), divisor_override=1).round().long()
        count = kh * kw
        out = torch.where(total > 0, trunc_div(total + count // 2, count), trunc_div(total - count // 2, count))
        low, high = self.activation_range(output, int(options.get("fusedActivationFunction", 0)))
        return out.clamp(low, high).permute(0, 2, 3, 1)

    def requantize(self, inputs: list[int], output: int, env: dict) -> torch.Tensor:
        (si, zi, _), (so, zo, dtype) = self.qparams(inputs[0]), self.qparams(output)
        if self.arithmetic == "xnnpack":
            if not self.graph.tensors[inputs[0]].dtype == dtype == "uint8":
                raise UserError(f"{self.path}: XNNPACK's QUANTIZE is matched for uint8 -> uint8 only")
            return xnnpack.convert(env[inputs[0]], (float(si[0]), int(zi[0])), (float(so[0]), int(zo[0])), *INT_RANGES[dtype])
        m, e = quantize_multiplier(float(si[0]) / float(so[0]))
        out = multiply_by_quantized_multiplier(env[inputs[0]] - int(zi[0]), torch.tensor(m), torch.tensor(e)) + int(zo[0])
        return out.clamp(*INT_RANGES[dtype])

    def concatenation(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        so, zo, dtype = self.qparams(output)
        parts = []
        for index in inputs:
            si, zi, _ = self.qparams(index)
            x = env[index]
            if float(si[0]) != float(so[0]) or int(zi[0]) != int(zo[0]):
                scale = np.float32(si[0]) * (np.float32(1.0) / np.float32(so[0]))
                bias = -np.float32(zi[0]) * scale
                values = tflite_round(x.numpy().astype(np.float32) * scale + bias).astype(np.int64) + int(zo[0])
                x = torch.from_numpy(values).clamp(*INT_RANGES[dtype])
            parts.append(x)
        axis = int(options.get("axis", -1))
        return torch.cat(parts, dim=axis)

    def logistic(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        """8-bit LOGISTIC as a 256-entry table: ``rint(sigmoid(in_scale * (q - zp)) / out_scale) + zp``
        in float32 (TFLite's and XNNPACK's tables agree)."""
        (si, zi, dtype), (so, zo, _) = self.qparams(inputs[0]), self.qparams(output)
        low, high = INT_RANGES[dtype]
        f = np.float32
        q = np.arange(low, high + 1)
        values = f(1.0) / (f(1.0) + np.exp(-(f(si[0]) * (q - int(zi[0])).astype(np.float32))))
        table = np.clip(np.rint(values / f(so[0])) + int(zo[0]), *INT_RANGES[self.graph.tensors[output].dtype])
        return torch.from_numpy(table.astype(np.int64))[env[inputs[0]] - low]

    def reshape(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        x = env[inputs[0]]
        return x.reshape(x.shape[0], *self.graph.tensors[output].shape[1:])  # the file's batch is 1

    def resize_bilinear(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        """TFLite's ``ResizeBilinearInteger``: source positions and weights in 10-bit fixed point,
        the four weighted corners summed in int64 and rounded half away from zero by 2**20.

        (A float32 interpolation truncated to uint8, the older uint8 kernel, is one step low on about
        half of DeepLab's 33 -> 513 logits; this matches LiteRT bit for bit.)"""
        x = env[inputs[0]]
        out_h, out_w = (int(v) for v in self.graph.stored[inputs[1]])
        align, half = bool(options.get("alignCorners")), bool(options.get("halfPixelCenters"))
        y, y0, y1 = _interpolation_10(x.shape[1], out_h, align, half)
        u, x0, x1 = _interpolation_10(x.shape[2], out_w, align, half)
        one = 1 << 10
        dy = (y - one * y0).view(1, -1, 1, 1)
        dx = (u - one * x0).view(1, 1, -1, 1)
        top, bottom = x[:, y0], x[:, y1]
        total = (top[:, :, x0] * (one - dy) * (one - dx) + bottom[:, :, x0] * dy * (one - dx)
                 + top[:, :, x1] * (one - dy) * dx + bottom[:, :, x1] * dy * dx)
        return trunc_div(total + torch.where(total > 0, 1 << 19, -(1 << 19)), 1 << 20)

    def mean(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        """TFLite's quantized MEAN over height and width (optimized ``MeanImpl``, the TF2 files' global
        pooling): the integer sum requantized by ``in_scale / (count * out_scale)``, plus a float32
        zero-point bias rounded half away from zero (all matched bit for bit against LiteRT)."""
        axes = sorted(int(a) % 4 for a in self.graph.stored[inputs[1]].reshape(-1))
        if axes != [1, 2]:
            raise UserError(f"{self.path}: integer MEAN over axes {axes} is not supported (only height and width)")
        x = env[inputs[0]]
        (si, zi, _), (so, zo, dtype) = self.qparams(inputs[0]), self.qparams(output)
        count = x.shape[1] * x.shape[2]
        f = np.float32
        shifted = f(zi[0]) * f(si[0]) / f(so[0])
        bias = int(zo[0]) - int(shifted + f(0.5) if shifted > 0 else shifted - f(0.5))
        m, e = quantize_multiplier(float(f(si[0]) / (f(count) * f(so[0]))))
        total = x.sum(dim=(1, 2), keepdim=True)
        # Ties toward +inf, as CONV_2D: gemmlowp's rounding misses 99 of 5120 values on 4 images.
        out = multiply_by_quantized_multiplier_ties_up(total, torch.tensor(m), torch.tensor(e)) + bias
        out = out.clamp(*INT_RANGES[dtype])
        return out if options.get("keepDims", True) else out.flatten(1, 2)

    # -- the graph ------------------------------------------------------------------------------
    def raw_outputs(self) -> tuple[list[int], str | None]:
        """The tensors the suite's evaluation takes and the post-processing op that hides them: the
        inputs of the last SOFTMAX / ARG_MAX, or of TFLite_Detection_PostProcess as (class scores,
        box codes), the order of the suite's SSD outputs; else the file's outputs."""
        # The last post-processing op (a trailing QUANTIZE, as in the TF2 files, only converts its output).
        last = next((op for op in reversed(self.graph.ops) if op.kind in POSTPROCESS_OPS), self.graph.ops[-1])
        if last.kind == "SOFTMAX" and self.arithmetic == "xnnpack":
            # XNNPACK's uint8 probabilities tie where the logits do not; its top-1 is their arg-max.
            return [last.outputs[0]], last.kind
        if last.kind in ("SOFTMAX", "ARG_MAX"):
            return [last.inputs[0]], last.kind
        if last.kind == "TFLite_Detection_PostProcess":
            # The scores as the op sees them: the LOGISTIC's 8-bit output (1/256 steps, with their
            # ties), which IntegerTFLiteModel hands on as logits that give them back.
            return [last.inputs[1], last.inputs[0]], last.kind
        return list(self.graph.outputs), None

    def ops_to_raw(self) -> tuple[TFLiteOp, ...]:
        """The ops that run: the file's, up to the last one that makes a raw output."""
        raw = set(self.raw_outputs()[0])
        last = max(position for position, op in enumerate(self.graph.ops) if op.outputs[0] in raw)
        return self.graph.ops[: last + 1]

    def chunk_images(self) -> int:
        """Images per chunk: as many as keep the largest activation tensor within ``CHUNK_BYTES``."""
        largest = max(4 * int(np.prod(self.graph.tensors[op.outputs[0]].shape[1:])) for op in self.ops_to_raw())
        return max(1, CHUNK_BYTES // largest)

    @torch.no_grad()
    def run(self, pixels: np.ndarray, *, keep: bool = False) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """``pixels``: [N, H, W, C] in the input tensor's integer type. Returns the raw outputs
        (``raw_outputs``, dequantized float) and the stored integers (float32, NHWC) of the raw
        outputs, or with ``keep`` of every tensor computed (per-layer comparisons; without it each
        tensor is dropped after its last reader). The post-processing ops are not run: the suite's
        evaluation does their job.

        Without ``keep`` the batch runs in chunks of a few images (``chunk_images``), one chunk per
        thread: a chunk's tensors stay in cache through the requantization's passes, and chunks on
        separate cores never wait on each other (an op of one chunk is too small to share: OpenMP's
        barrier per op costs more than the op on a busy machine)."""
        raw, _ = self.raw_outputs()
        pixels = np.asarray(pixels)
        step = self.chunk_images()
        if keep or len(pixels) <= step:
            stored = self._run_chunk(pixels, keep)
        else:
            parts = map_single_threaded(self._run_chunk, [pixels[i : i + step] for i in range(0, len(pixels), step)])
            stored = {i: torch.cat([part[i] for part in parts]) for i in raw}
        return [self.dequantize(i, stored[i]) for i in raw], stored

    @torch.no_grad()
    def _run_chunk(self, pixels: np.ndarray, keep: bool = False) -> dict[int, torch.Tensor]:
        """``run`` on one chunk: the stored integers of the raw outputs (with ``keep``: of every tensor)."""
        raw, _ = self.raw_outputs()
        ops = self.ops_to_raw()
        last_use = {tensor: position for position, op in enumerate(ops) for tensor in op.inputs}
        env = {self.input: torch.from_numpy(pixels).float().sub_(self.zero_point(self.input))}
        for position, op in enumerate(ops):
            env[op.outputs[0]] = self.centered_op(op, env)
            if not keep:
                for tensor in op.inputs:
                    if last_use[tensor] == position and tensor not in raw:
                        env.pop(tensor, None)
        return {i: t + self.zero_point(i) for i, t in env.items() if keep or i in raw}

    def run_op(self, op: TFLiteOp, env: dict[int, torch.Tensor]) -> torch.Tensor:
        """One op on the stored integers (float32) already in ``env``: its output's stored integers."""
        centered = {i: env[i] - self.zero_point(i) for i in op.inputs if i in env}
        return self.centered_op(op, centered) + self.zero_point(op.outputs[0])

    def centered_op(self, op: TFLiteOp, env: dict[int, torch.Tensor]) -> torch.Tensor:
        """One op on centered tensors (``run``'s). Convolutions run on them as they are; elementwise
        ops of 8-bit tensors by table (``by_table``); the others on the stored integers in int64."""
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            return self.conv(op, env)
        kernel = self.kernel(op)
        if op.kind in ELEMENTWISE and len(set(op.inputs)) == len(op.inputs) and all(i in env for i in op.inputs):
            return self.by_table(op, kernel, env)
        integers = {i: env[i].long() + self.zero_point(i) for i in op.inputs if i in env}
        out = kernel(list(op.inputs), op.outputs[0], op.options, integers)
        return (out - self.zero_point(op.outputs[0])).float()

    def kernel(self, op: TFLiteOp) -> Any:
        """The int64 kernel of a non-convolution op; one the arithmetic lacks is a UserError."""
        kernels = {
            "ADD": self.add,
            "AVERAGE_POOL_2D": self.average_pool,
            "RESHAPE": self.reshape,
            "QUANTIZE": lambda inputs, output, options, env: self.requantize(inputs, output, env),
            "CONCATENATION": self.concatenation,
            "RESIZE_BILINEAR": self.resize_bilinear,
            "MEAN": self.mean,
            "LOGISTIC": self.logistic,
        }
        if self.arithmetic == "xnnpack":
            kernels = {kind: kernels[kind] for kind in XNNPACK_MATCHED if kind in kernels}
            kernels["SOFTMAX"] = self.xnnpack_softmax
        if op.kind not in kernels:
            supported = ", ".join(["CONV_2D", "DEPTHWISE_CONV_2D", *kernels])
            raise UserError(f"{self.path}: integer execution does not support {op.kind} ({op.describe()}); "
                            f"supported: {supported} before the file's SOFTMAX / ARG_MAX / "
                            "TFLite_Detection_PostProcess")
        return kernels[op.kind]

    def by_table(self, op: TFLiteOp, kernel: Any, env: dict[int, torch.Tensor]) -> torch.Tensor:
        """An elementwise op of one or two 8-bit tensors as a table: its output for every input value
        (256 or 65536 entries), made once by the op's own int64 kernel, then one gather per batch:
        the same integers by construction, for a fraction of the fixed-point passes."""
        offsets = [self.zero_point(i) - INT_RANGES[self.graph.tensors[i].dtype][0] for i in op.inputs]
        if op.index not in self._tables:
            grids = torch.meshgrid(*[torch.arange(256) - offset + self.zero_point(i)
                                     for i, offset in zip(op.inputs, offsets, strict=True)], indexing="ij")
            stored = kernel(list(op.inputs), op.outputs[0], op.options, {i: g.reshape(-1) for i, g in zip(op.inputs, grids, strict=True)})
            self._tables[op.index] = (stored - self.zero_point(op.outputs[0])).float()
        index = env[op.inputs[0]] + offsets[0]
        if len(op.inputs) == 2:
            index = torch.add(index.mul_(256), env[op.inputs[1]]).add_(offsets[1])
        return self._tables[op.index][index.long()]

    def xnnpack_softmax(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        info = self.graph.tensors[output]
        if self.graph.tensors[inputs[0]].dtype != "uint8" or (info.scale, info.zero_point) != (1 / 256, 0):
            raise UserError(f"{self.path}: XNNPACK's SOFTMAX is matched for uint8 (scale 1/256) only")
        return xnnpack.softmax(env[inputs[0]], self.graph.tensors[inputs[0]].scale)

    def dequantize(self, index: int, values: torch.Tensor) -> torch.Tensor:
        """Integer ``values`` of tensor ``index`` as float32: ``(q - zero_point) * scale``."""
        scales, zero_points, _ = self.qparams(index)
        return ((values - int(zero_points[0])).double() * float(scales[0])).float()


T = TypeVar("T")
R = TypeVar("R")


def map_single_threaded(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``function`` over ``items`` on as many threads as PyTorch has for one op, each op inside them
    on one thread (PyTorch's count is restored after): the items run side by side rather than each
    op of one item split across the cores. PyTorch releases the GIL inside its ops."""
    threads = torch.get_num_threads()
    if threads == 1 or len(items) == 1:
        return [function(item) for item in items]
    torch.set_num_threads(1)  # new threads take this count when they first run an op
    try:
        with ThreadPoolExecutor(min(threads, len(items))) as pool:
            return list(pool.map(function, items))
    finally:
        torch.set_num_threads(threads)


def _interpolation_10(size: int, out_size: int, align: bool, half: bool) -> tuple[torch.Tensor, ...]:
    """TFLite's ``ComputeInterpolationValuesInteger`` for every output row (or column): the source
    position in 1/1024 steps and the lower and upper source index."""
    if align and out_size > 1:
        scale = ((1 << 10) * (size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = ((1 << 10) * size + out_size // 2) // out_size
    position = torch.arange(out_size) * scale + ((scale // 2 - (1 << 9)) if half else 0)
    lower = trunc_div(position, 1 << 10).clamp_min(0)
    upper = trunc_div(position + (1 << 10) - 1, 1 << 10).clamp_max(size - 1)
    return position, lower, upper
