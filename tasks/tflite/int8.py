"""Integer-faithful execution of a quantized ``.tflite`` file in PyTorch (TFLite's reference arithmetic).

The float import (``tasks.tflite.importer``) runs the dequantized weights in float: the deployed model's
float shadow. This runs the file's own integer graph: uint8/int8 tensors with per-tensor or
per-channel scales and zero points, int32 accumulators, and TFLite's requantization
(``MultiplyByQuantizedMultiplier``: gemmlowp's ``SaturatingRoundingDoublingHighMul`` then
``RoundingDivideByPOT``), fused ReLU/ReLU6 as activation min/max clamps, quantized ADD (left shift
20, per-input multipliers), average pooling with TFLite's rounding and RESHAPE. Execution stops at
the file's post-processing op (SOFTMAX, ARG_MAX, LOGISTIC, TFLite_Detection_PostProcess) and
returns that op's input dequantized: the raw outputs the suite's evaluation takes.

Integers are held in int64 tensors; convolutions run in float64, exact for integer sums below 2**53
(the largest here is ~1e8). Exactness, not speed, is the point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from backbones.errors import UserError
from tasks.tflite.reader import TFLiteGraph, read_tflite

STOP_OPS = ("SOFTMAX", "ARG_MAX", "LOGISTIC", "TFLite_Detection_PostProcess")
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
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int64 tensors holding int32 values."""
    product = a * b
    nudge = torch.where(product >= 0, torch.tensor(1 << 30), torch.tensor(1 - (1 << 30)))
    result = _trunc_div(product + nudge, 1 << 31)
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return torch.where(overflow, torch.tensor((1 << 31) - 1), result)


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


def tflite_round(x: np.ndarray | float) -> np.ndarray:
    """``TfLiteRound`` / ``std::round``: half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


class QuantizedTFLite:
    """A quantized file run op by op in integers; ``__call__(pixels uint8 NHWC)`` -> raw float outputs."""

    def __init__(self, path: str | Path | TFLiteGraph) -> None:
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
            pads = []
            for size, k, s, d in zip(xin.shape[2:], weight.shape[2:], stride, dilation, strict=True):
                effective = (k - 1) * d + 1
                out = -(-size // s)
                total = max((out - 1) * s + effective - size, 0)
                pads.append((total // 2, total - total // 2))
            xin = F.pad(xin, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        acc = F.conv2d(xin, weight.double(), stride=stride, dilation=dilation, groups=groups)
        acc = acc.round().long()
        if len(inputs) > 2 and inputs[2] >= 0:
            acc = acc + torch.from_numpy(self.graph.stored[inputs[2]].astype(np.int64)).view(1, -1, 1, 1)
        scales = np.broadcast_to(w_scales, (channels,))
        if w_scales.size == 1:
            # Per-tensor (TF1 uint8 files): TFLite's legacy multiplier, the scale product taken in float32.
            pairs = [quantize_multiplier(float(np.float32(in_scale[0]) * np.float32(scales[0])) / float(out_scale[0]))] * channels
        else:
            pairs = [quantize_multiplier(float(in_scale[0]) * float(s) / float(out_scale[0])) for s in scales]
        multiplier = torch.tensor([m for m, _ in pairs]).view(1, -1, 1, 1)
        shift = torch.tensor([s for _, s in pairs]).view(1, -1, 1, 1)
        out = multiply_by_quantized_multiplier(acc, multiplier, shift) + int(out_zp[0])
        low, high = self.activation_range(output, int(options.get("fusedActivationFunction", 0)))
        return out.clamp(low, high).permute(0, 2, 3, 1)

    def add(self, inputs: list[int], output: int, options: dict[str, Any], env: dict) -> torch.Tensor:
        (s1, z1, _), (s2, z2, _), (so, zo, _) = (self.qparams(i) for i in (*inputs, output))
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

    # -- the graph ------------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, pixels: np.ndarray) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
        """``pixels``: [N, H, W, 3] in the input tensor's integer type. Returns the stop op's inputs
        (dequantized float) and every integer tensor computed (for per-layer comparisons)."""
        env: dict[int, torch.Tensor] = {self.input: torch.from_numpy(np.asarray(pixels).astype(np.int64))}
        for op in self.graph.ops:
            kind, inputs, outputs, options = op.kind, list(op.inputs), list(op.outputs), op.options
            if kind in STOP_OPS:
                raw = [inputs[0]] if kind != "TFLite_Detection_PostProcess" else inputs[:2]
                return [self.dequantize(i, env) for i in raw], env
            output = outputs[0]
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                env[output] = self.conv(kind, inputs, output, options, env)
            elif kind == "ADD":
                env[output] = self.add(inputs, output, options, env)
            elif kind == "AVERAGE_POOL_2D":
                env[output] = self.average_pool(inputs, output, options, env)
            elif kind == "RESHAPE":
                env[output] = env[inputs[0]].reshape(self.graph.tensors[output].shape)
            elif kind == "QUANTIZE":
                env[output] = self.requantize(inputs, output, env)
            elif kind == "CONCATENATION":
                env[output] = self.concatenation(inputs, output, options, env)
            else:
                raise UserError(f"{self.path}: integer execution does not support {kind} (op {op.index}); "
                                "supported: CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, RESHAPE, QUANTIZE, "
                                "CONCATENATION up to SOFTMAX/ARG_MAX/LOGISTIC/TFLite_Detection_PostProcess")
        last = self.graph.ops[-1].outputs[0]
        return [self.dequantize(last, env)], env

    def dequantize(self, index: int, env: dict[int, torch.Tensor]) -> torch.Tensor:
        scales, zero_points, _ = self.qparams(index)
        return ((env[index] - int(zero_points[0])).double() * float(scales[0])).float()
