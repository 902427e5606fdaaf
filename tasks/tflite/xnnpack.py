"""XNNPACK's 8-bit arithmetic: what LiteRT's default interpreter computes for a quantized file.

LiteRT hands uint8/int8 graphs to its XNNPACK delegate unless told otherwise, and XNNPACK does not
use TFLite's fixed-point requantization: convolutions scale the int32 accumulator in float32 and
round half to even (its "fp32" requantization), ADD has its own multipliers below 2**21, SOFTMAX is
a 32-bit exp table normalised by integer division. Each function below was matched bit for bit,
op by op, against the delegate's own tensors (the file repacked with every op's output as a graph
output) on MobileNetV1 and V2, the SSD and DeepLab; average pooling, RESIZE_BILINEAR and
CONCATENATION are TFLite's (they match). Functions take and return int64 tensors holding the
stored integers, but ``requantize_fp32``, which returns them centered in float32 as the engine holds them.
"""

from __future__ import annotations

import struct

import numpy as np
import torch


def requantize_fp32(acc: torch.Tensor, scale: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """``rint(float(acc) * scale)`` clamped in float to ``[low, high]``: the activation range less the
    output zero point, so the result is centered (the stored integer minus the zero point). Float32
    out, computed in place when ``acc`` is already float32.

    ``scale`` is float32, one per channel on dimension 1 (NCHW): XNNPACK takes
    ``input_scale * filter_scale / output_scale`` in float32 (``conv_scales``). An int64 ``acc`` is
    converted as XNNPACK converts its int32 one (round to nearest even); a float32 one must hold
    the exact accumulator (``tasks.tflite.integer_conv`` checks that it can)."""
    values = acc if acc.dtype == torch.float32 else acc.float()
    values.mul_(scale.reshape(1, -1, *([1] * (acc.ndim - 2))))
    return values.clamp_(float(low), float(high)).round_()  # torch rounds half to even, as rint


def conv_scales(input_scale: float, filter_scales: np.ndarray, output_scale: float) -> torch.Tensor:
    f = np.float32
    return torch.from_numpy((f(input_scale) * np.asarray(filter_scales, np.float32)) / f(output_scale))


def add(a: torch.Tensor, b: torch.Tensor, quant: tuple[tuple[float, int], ...], low: int, high: int) -> torch.Tensor:
    """XNNPACK's quantized ADD: ``(bias + a * a_multiplier + b * b_multiplier) >> shift``, the larger
    multiplier in [2**20, 2**21) (``xnn_init_qu8_add_minmax_params``)."""
    (sa, za), (sb, zb), (so, zo) = quant
    f = np.float32
    a_scale, b_scale = f(sa) / f(so), f(sb) / f(so)
    exponent = ((_float_bits(max(abs(a_scale), abs(b_scale))) >> 23) & 0xFF) - 127
    shift = 20 - exponent
    power = f(struct.unpack("<f", struct.pack("<I", (shift + 127) << 23))[0])
    a_multiplier, b_multiplier = int(np.rint(power * a_scale)), int(np.rint(power * b_scale))
    bias = (1 << (shift - 1)) - a_multiplier * za - b_multiplier * zb
    out = (bias + a * a_multiplier + b * b_multiplier) >> shift
    return out.clamp(low - zo, high - zo) + zo


def convert(x: torch.Tensor, input_quant: tuple[float, int], output_quant: tuple[float, int], low: int, high: int) -> torch.Tensor:
    """XNNPACK's QUANTIZE between 8-bit types (``xnn_init_qu8_cvt_params``): an 8-bit fraction
    multiplier ``rint(256 * in_scale / out_scale)``, the zero points folded into a bias, ``>> 8``."""
    (si, zi), (so, zo) = input_quant, output_quant
    multiplier = int(np.rint(np.float32(256.0) * (np.float32(si) / np.float32(so))))
    bias = (zo << 8) - multiplier * zi + 0x80
    return ((bias + x * multiplier) >> 8).clamp(low, high)


def softmax(logits: torch.Tensor, input_scale: float) -> torch.Tensor:
    """XNNPACK's uint8 SOFTMAX over the last axis (output scale 1/256, zero point 0): a table of
    ``qscale * exp((i - 255) * scale)`` read from the row's maximum, each entry times 256 divided by
    the row's sum with rounding, capped at 255 (``xnn_u8_lut32norm``)."""
    channels = logits.shape[-1]
    qscale = min(float(2**32 - 1) / channels, 8388607.0)
    table = torch.tensor([int(np.rint(qscale * np.exp((i - 255) * float(input_scale)))) for i in range(256)])
    entries = table[logits - logits.amax(-1, keepdim=True) + 255]
    total = entries.sum(-1, keepdim=True)
    return torch.div((entries << 8) + (total >> 1), total, rounding_mode="floor").clamp_max(255)


def _float_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", float(value)))[0]
