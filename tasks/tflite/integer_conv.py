"""One CONV_2D / DEPTHWISE_CONV_2D of a quantized file, prepared once and run on a whole batch.

The int32 accumulator comes from a float32 convolution, exactly: the products of 8-bit inputs and
weights (zero points removed) are integers, float32 holds every integer below 2**24, so a float32
convolution is exact in any summation order while no partial sum can reach 2**24. That is bounded
per layer when it is prepared: ``sum |w| * max |x - zero point| + |bias|`` over each output channel,
``max |x - zero point|`` from the input's 8-bit range. On the official files every layer but one
of the TF2 MobileNetV2's stays below (MobileNetV2's largest at half of it), so one oneDNN float32 convolution (the
fastest kernel PyTorch has on CPU, run on the NHWC memory TFLite's layout gives) makes the
accumulator; a layer above the bound splits its input into 4-bit halves (two float32 convolutions,
``integer_conv2d``) or runs in float64. The requantization then runs on the whole batch at once:
XNNPACK's in float32 (``tasks.tflite.xnnpack.requantize_fp32``), TFLite's fixed point in int64
(``tasks.tflite.fixed_point.ConvRequantization``).

Tensors are the engine's: float32 holding the stored integers less their zero point ("centered":
what the arithmetic works on, so no op adds or subtracts it), NHWC as TFLite lays them out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from backbones.layers import tf_same_padding
from tasks.tflite import xnnpack
from tasks.tflite.fixed_point import ConvRequantization, quantize_multiplier
from tasks.tflite.reader import TFLiteGraph, TFLiteOp

FLOAT32_EXACT = 1 << 24  # float32 holds every integer of smaller magnitude
INT_RANGES = {"uint8": (0, 255), "int8": (-128, 127)}


def integer_conv2d(x: torch.Tensor, weight: torch.Tensor, **conv: Any) -> torch.Tensor:
    """The exact accumulator (int64) of a convolution of integer tensors ``x`` and ``weight``, for a
    layer whose sums may pass 2**24: ``x`` split into ``16 * high + low`` (``low`` in [0, 16), both
    parts at most 16 in magnitude), each part convolved in float32 and the two integer results
    recombined; a layer whose sums could pass 2**24 even so runs in float64."""
    taps = weight[0].numel()
    if taps * 16 * int(weight.abs().max()) >= FLOAT32_EXACT:
        return F.conv2d(x.double(), weight.double(), **conv).round().long()
    high = torch.div(x, 16, rounding_mode="floor")
    low = x - 16 * high
    w = weight.float()
    return 16 * F.conv2d(high.float(), w, **conv).round().long() + F.conv2d(low.float(), w, **conv).round().long()


class IntegerConv:
    """``conv(x)``: the op's output for a batch ``x`` of its input (both centered float32, NHWC)."""

    def __init__(self, graph: TFLiteGraph, op: TFLiteOp, arithmetic: str, activation: tuple[int, int]) -> None:
        x_info, w_info, out_info = (graph.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        stored = graph.stored[op.inputs[1]].astype(np.int64)
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        channels = stored.shape[3] if depthwise else stored.shape[0]
        w_zps = np.broadcast_to(np.asarray(w_info.zero_points or (0,), np.int64), (channels,))
        if depthwise:  # [1, kh, kw, C * multiplier] -> [C * multiplier, 1, kh, kw], one group per input channel
            weight = (stored - w_zps.reshape(1, 1, 1, -1)).transpose(3, 0, 1, 2)
        else:  # [out, kh, kw, in] -> [out, in, kh, kw]
            weight = (stored - w_zps.reshape(-1, 1, 1, 1)).transpose(0, 3, 1, 2)
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        bias = graph.stored[op.inputs[2]].astype(np.int64) if has_bias else np.zeros(channels, np.int64)
        self.weight = torch.from_numpy(np.ascontiguousarray(weight))  # int64, zero point removed
        self.bias = torch.from_numpy(bias)
        self.groups = int(x_info.shape[-1]) if depthwise else 1
        self.stride = (int(op.options["strideH"]), int(op.options["strideW"]))
        self.dilation = (int(op.options.get("dilationHFactor", 1)), int(op.options.get("dilationWFactor", 1)))
        self.same = op.options["padding"] == 0
        zero_point = int(x_info.zero_point)
        low, high = INT_RANGES[x_info.dtype]
        reach = max(zero_point - low, high - zero_point)
        sums = np.abs(weight).reshape(channels, -1).sum(1) * reach + np.abs(bias)
        self.exact_in_float32 = int(sums.max()) < FLOAT32_EXACT
        self.weight32 = self.weight.float().contiguous(memory_format=torch.channels_last)
        self.bias32 = self.bias.float()
        self.low, self.high = (bound - int(out_info.zero_point) for bound in activation)  # centered
        scales = np.broadcast_to(np.asarray(w_info.scales, np.float64), (channels,))
        if arithmetic == "xnnpack":
            self.scale = xnnpack.conv_scales(x_info.scale, scales, out_info.scale)
            return
        if len(w_info.scales) == 1:
            # Per-tensor (TF1 uint8 files): TFLite's legacy multiplier, the scale product taken in float32.
            real = float(np.float32(x_info.scale) * np.float32(scales[0])) / float(out_info.scale)
            pairs = [quantize_multiplier(real)] * channels
        else:
            pairs = [quantize_multiplier(float(x_info.scale) * float(s) / float(out_info.scale)) for s in scales]
        self.scale = None
        # LiteRT's CONV_2D goes through its GEMM (ties up); DEPTHWISE_CONV_2D keeps gemmlowp's rounding.
        self.fixed_point = ConvRequantization([m for m, _ in pairs], [e for _, e in pairs], ties_up=not depthwise)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        padding = (0, 0)
        if self.same:  # TF pads (total // 2) before, the rest after, with the zero point: 0 centered
            pads = [tf_same_padding(size, k, s, d) for size, k, s, d in
                    zip(x.shape[1:3], self.weight.shape[2:], self.stride, self.dilation, strict=True)]
            if all(before == after for before, after in pads):
                padding = (pads[0][0], pads[1][0])  # symmetric: the convolution pads, no copy
            else:
                x = F.pad(x, (0, 0, pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        nchw = x.permute(0, 3, 1, 2)  # NHWC memory seen as NCHW: oneDNN's channels-last path
        conv = {"stride": self.stride, "padding": padding, "dilation": self.dilation, "groups": self.groups}
        if self.exact_in_float32:
            acc = F.conv2d(nchw, self.weight32, self.bias32, **conv)
        else:
            acc = integer_conv2d(nchw, self.weight, **conv) + self.bias.view(1, -1, 1, 1)
        return self.requantize(acc).permute(0, 2, 3, 1)

    def requantize(self, acc: torch.Tensor) -> torch.Tensor:
        """The int32 accumulator (exact float32 or int64, NCHW) -> the output, centered float32."""
        if self.scale is not None:
            return xnnpack.requantize_fp32(acc, self.scale, self.low, self.high)
        return self.fixed_point(acc).float().clamp_(self.low, self.high)
