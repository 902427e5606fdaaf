"""Integer-faithful execution of a quantized ``.tflite`` file in PyTorch.

The float import (``tasks.tflite.importer``) runs the dequantized weights in float: the deployed model's
float shadow. This runs the file's own integer graph: uint8/int8 tensors with per-tensor or
per-channel scales and zero points, int32 accumulators, TFLite's requantization
(``MultiplyByQuantizedMultiplier``: gemmlowp's ``SaturatingRoundingDoublingHighMul`` then
``RoundingDivideByPOT``; ties toward +inf for CONV_2D and MEAN), fused ReLU/ReLU6 as activation
min/max clamps, quantized ADD (left shift 20, per-input multipliers), average pooling, MEAN,
RESIZE_BILINEAR, CONCATENATION, QUANTIZE, LOGISTIC and RESHAPE. ``arithmetic="xnnpack"`` swaps in
XNNPACK's requantization, ADD, QUANTIZE and SOFTMAX (``tasks.tflite.xnnpack``): what LiteRT's
default interpreter computes. Execution stops at the file's raw outputs (``raw_outputs``: the
inputs of its SOFTMAX / ARG_MAX / TFLite_Detection_PostProcess), returned dequantized: what the
suite's evaluation takes.

Integers are held in int64 tensors; convolutions run in float32 on the input split into two 4-bit
halves (``integer_conv2d``), exact because every partial sum stays below 2**24. Exactness first,
speed second.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from backbones.errors import UserError
from backbones.layers import tf_same_padding
from tasks.tflite import xnnpack
from tasks.tflite.outputs import POSTPROCESS_OPS
from tasks.tflite.reader import TFLiteGraph, TFLiteOp, read_tflite

ARITHMETICS = ("tflite", "xnnpack")
# The ops whose XNNPACK results were matched bit for bit (tasks/tflite/xnnpack.py); others refuse.
XNNPACK_MATCHED = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "CONCATENATION",
                   "RESIZE_BILINEAR", "QUANTIZE", "LOGISTIC")
INT_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}
ACTIVATION_BOUNDS = {0: None, 1: (0.0, None), 3: (0.0, 6.0)}  # fused NONE, RELU, RELU6


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real = multiplier * 2**(shift - 31)``, multiplier in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    mantissa, shift = np.frexp(real)
    multiplier = int(round(mantissa * (1 << 31)))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return multiplier, int(shift)


def _trunc_div(x: torch.Tensor, d: int) -> torch.Tensor:
    return torch.div(x, d, rounding_mode="trunc")


def saturating_rounding_doubling_high_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int64 tensors holding int32 values.

    gemmlowp nudges by 2**30 (or 1 - 2**30 below zero) and divides by 2**31 truncating; both cases
    equal ``floor((a * b + 2**30) / 2**31)``, one add and one shift. Its one saturating case,
    ``a == b == -2**31``, cannot occur: TFLite's multipliers are positive."""
    return (a * b + (1 << 30)) >> 31


def rounding_divide_by_pot(x: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """gemmlowp's ``RoundingDivideByPOT``: divide by 2**exponent, rounding half away from zero."""
    mask = (torch.ones_like(exponent) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).long()
    return (x >> exponent) + (remainder > threshold).long()


def multiply_by_quantized_multiplier(x: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """TFLite's ``MultiplyByQuantizedMultiplier`` (double rounding), broadcast per channel."""
    left = shift.clamp_min(0)
    right = (-shift).clamp_min(0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x * (torch.ones_like(left) << left), multiplier), right)


def multiply_by_quantized_multiplier_ties_up(x: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """LiteRT's CONV_2D requantization (its GEMM backend, ruy): the same high multiply, then a right
    shift that rounds ties toward +inf rather than away from zero.

    Measured, not read off a header: with ``RoundingDivideByPOT`` every CONV_2D without a ReLU
    (MobileNetV2's projections, the logits) lands one step low on a few negative ties per layer
    (e.g. 381 of 200704 values in MobileNetV2's first projection); with this rounding every
    CONV_2D of the seven quantized files matches LiteRT bit for bit. DEPTHWISE_CONV_2D and ADD
    keep gemmlowp's rounding (they do not go through the GEMM)."""
    left = shift.clamp_min(0)
    right = (-shift).clamp_min(0)
    high = saturating_rounding_doubling_high_mul(x * (torch.ones_like(left) << left), multiplier)
    half = torch.where(right > 0, torch.ones_like(right) << (right - 1).clamp_min(0), torch.zeros_like(right))
    return (high + half) >> right


def integer_conv2d(x: torch.Tensor, weight: torch.Tensor, **conv: Any) -> torch.Tensor:
    """The exact int32 accumulator of a convolution of integer tensors (``x`` float64, ``weight`` int64).

    Float32 convolutions are several times faster than float64 on CPU, and exact while every
    partial sum stays below 2**24. So ``x`` is split into ``16 * high + low`` (``low`` in [0, 16),
    both parts below 17 in magnitude), each part convolved in float32 and the two integer results
    recombined; a layer whose sums could pass 2**24 even so runs in float64."""
    taps = weight[0].numel()
    if taps * 16 * int(weight.abs().max()) >= 1 << 24:
        return F.conv2d(x, weight.double(), **conv).round().long()
    high = torch.div(x, 16, rounding_mode="floor")
    low = x - 16 * high
    w = weight.float()
    return (16 * F.conv2d(high.float(), w, **conv).round().long() + F.conv2d(low.float(), w, **conv).round().long())


def tflite_round(x: np.ndarray | float) -> np.ndarray:
    """``TfLiteRound`` / ``std::round``: half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


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
        return env[index] if index in env else torch.from_numpy(self.graph.stored[index].astype(np.int64))

    # -- ops ------------------------------------------------------------------------------------
    def conv(self, kind: str, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        x = env[inputs[0]]  # NHWC int64
        in_scale, in_zp, _ = self.qparams(inputs[0])
        w_scales, w_zps, _ = self.qparams(inputs[1])
        out_scale, out_zp, _ = self.qparams(output)
        weight = torch.from_numpy(self.graph.stored[inputs[1]].astype(np.int64))
        channels = weight.shape[0] if kind == "CONV_2D" else weight.shape[3]
        zp_w = torch.from_numpy(np.broadcast_to(w_zps, (channels,)).copy()) if w_zps.size else torch.zeros(channels, dtype=torch.long)
        if kind == "CONV_2D":
            weight = (weight - zp_w.view(-1, 1, 1, 1)).permute(0, 3, 1, 2)
            groups = 1
        else:
            weight = (weight - zp_w.view(1, 1, 1, -1)).permute(3, 0, 1, 2)
            groups = x.shape[-1]
        stride = (int(options["strideH"]), int(options["strideW"]))
        dilation = (int(options.get("dilationHFactor", 1)), int(options.get("dilationWFactor", 1)))
        xin = (x - int(in_zp[0])).permute(0, 3, 1, 2).double()
        if options["padding"] == 0:  # SAME: TF pads (total // 2) before, the rest after, with the zero point
            pads = [tf_same_padding(size, k, s, d)
                    for size, k, s, d in zip(xin.shape[2:], weight.shape[2:], stride, dilation, strict=True)]
            xin = F.pad(xin, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        acc = integer_conv2d(xin, weight, stride=stride, dilation=dilation, groups=groups)
        if len(inputs) > 2 and inputs[2] >= 0:
            acc = acc + torch.from_numpy(self.graph.stored[inputs[2]].astype(np.int64)).view(1, -1, 1, 1)
        scales = np.broadcast_to(w_scales, (channels,))
        low, high = self.activation_range(output, int(options.get("fusedActivationFunction", 0)))
        if self.arithmetic == "xnnpack":
            factors = xnnpack.conv_scales(in_scale[0], scales, out_scale[0])
            return xnnpack.requantize_fp32(acc, factors, int(out_zp[0]), low, high).permute(0, 2, 3, 1)
        if w_scales.size == 1:
            # Per-tensor (TF1 uint8 files): TFLite's legacy multiplier, the scale product taken in float32.
            pairs = [quantize_multiplier(float(np.float32(in_scale[0]) * np.float32(scales[0])) / float(out_scale[0]))] * channels
        else:
            pairs = [quantize_multiplier(float(in_scale[0]) * float(s) / float(out_scale[0])) for s in scales]
        multiplier = torch.tensor([m for m, _ in pairs]).view(1, -1, 1, 1)
        shift = torch.tensor([s for _, s in pairs]).view(1, -1, 1, 1)
        requantize = multiply_by_quantized_multiplier_ties_up if kind == "CONV_2D" else multiply_by_quantized_multiplier
        out = requantize(acc, multiplier, shift) + int(out_zp[0])
        return out.clamp(low, high).permute(0, 2, 3, 1)

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
        out = torch.where(total > 0, _trunc_div(total + count // 2, count), _trunc_div(total - count // 2, count))
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
        return _trunc_div(total + torch.where(total > 0, 1 << 19, -(1 << 19)), 1 << 20)

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

    @torch.no_grad()
    def run(self, pixels: np.ndarray) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """``pixels``: [N, H, W, 3] in the input tensor's integer type. Returns the raw outputs
        (``raw_outputs``, dequantized float) and every integer tensor computed (for per-layer
        comparisons). The post-processing ops are not run: the suite's evaluation does their job."""
        raw, _ = self.raw_outputs()
        env: dict[int, torch.Tensor] = {self.input: torch.from_numpy(np.asarray(pixels).astype(np.int64))}
        for op in self.graph.ops:
            if all(i in env for i in raw):
                break
            env[op.outputs[0]] = self.run_op(op, env)
        return [self.dequantize(i, env[i]) for i in raw], env

    def run_op(self, op: TFLiteOp, env: dict[int, torch.Tensor]) -> torch.Tensor:
        """One op on integer tensors already in ``env``; an op integer execution lacks is a UserError."""
        kernels = {
            "CONV_2D": partial(self.conv, op.kind),
            "DEPTHWISE_CONV_2D": partial(self.conv, op.kind),
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
            raise UserError(f"{self.path}: integer execution does not support {op.kind} ({op.describe()}); "
                            f"supported: {', '.join(kernels)} before the file's SOFTMAX / ARG_MAX / "
                            "TFLite_Detection_PostProcess")
        return kernels[op.kind](list(op.inputs), op.outputs[0], op.options, env)

    def xnnpack_softmax(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        info = self.graph.tensors[output]
        if self.graph.tensors[inputs[0]].dtype != "uint8" or (info.scale, info.zero_point) != (1 / 256, 0):
            raise UserError(f"{self.path}: XNNPACK's SOFTMAX is matched for uint8 (scale 1/256) only")
        return xnnpack.softmax(env[inputs[0]], self.graph.tensors[inputs[0]].scale)

    def dequantize(self, index: int, values: torch.Tensor) -> torch.Tensor:
        """Integer ``values`` of tensor ``index`` as float32: ``(q - zero_point) * scale``."""
        scales, zero_points, _ = self.qparams(index)
        return ((values - int(zero_points[0])).double() * float(scales[0])).float()


def _interpolation_10(size: int, out_size: int, align: bool, half: bool) -> tuple[torch.Tensor, ...]:
    """TFLite's ``ComputeInterpolationValuesInteger`` for every output row (or column): the source
    position in 1/1024 steps and the lower and upper source index."""
    if align and out_size > 1:
        scale = ((1 << 10) * (size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = ((1 << 10) * size + out_size // 2) // out_size
    position = torch.arange(out_size) * scale + ((scale // 2 - (1 << 9)) if half else 0)
    lower = _trunc_div(position, 1 << 10).clamp_min(0)
    upper = _trunc_div(position + (1 << 10) - 1, 1 << 10).clamp_max(size - 1)
    return position, lower, upper
