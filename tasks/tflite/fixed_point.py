"""TFLite's fixed-point arithmetic (gemmlowp) on int64 tensors holding int32 values.

``QuantizeMultiplier`` turns a real scale into a 31-bit multiplier and a shift;
``MultiplyByQuantizedMultiplier`` applies it (``SaturatingRoundingDoublingHighMul`` then
``RoundingDivideByPOT``), and LiteRT's CONV_2D / MEAN variant rounds the final shift's ties toward
+inf. ``tasks.tflite.int8`` builds its builtin-kernel requantization from these.
"""

from __future__ import annotations

import numpy as np
import torch


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


def trunc_div(x: torch.Tensor, d: int) -> torch.Tensor:
    return torch.div(x, d, rounding_mode="trunc")


def saturating_rounding_doubling_high_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul``.

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


def tflite_round(x: np.ndarray | float) -> np.ndarray:
    """``TfLiteRound`` / ``std::round``: half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


class ConvRequantization:
    """TFLite's requantization of a convolution's accumulator, per output channel (dimension 1), as
    one multiply, one add and one shift of int64 (the batch's largest tensors go through it).

    The two roundings nest into one floor: for integers ``a`` and ``b, d > 0``,
    ``floor((floor(a / b) + c) / d) == floor((a + c * b) / (b * d))``. So with
    ``P = x * 2**left * M + 2**30`` (``SaturatingRoundingDoublingHighMul``'s nudge), the final
    shift by ``right`` rounding ties up (CONV_2D) is ``(P + 2**(30 + right)) >> (31 + right)``, and
    ``RoundingDivideByPOT``'s ties away from zero (DEPTHWISE_CONV_2D) the same with ``2**31`` less
    where ``P < 0``; ``right == 0`` adds nothing. The result is centered (no zero point added).
    """

    def __init__(self, multipliers: list[int], shifts: list[int], *, ties_up: bool) -> None:
        view = (1, -1, 1, 1)
        scaled = [m << max(s, 0) for m, s in zip(multipliers, shifts, strict=True)]
        right = [max(-s, 0) for s in shifts]
        self.multiplier = torch.tensor(scaled).view(view)
        self.shift = torch.tensor([31 + r for r in right]).view(view)
        self.offset = torch.tensor([(1 << 30) + ((1 << (30 + r)) if r else 0) for r in right]).view(view)
        self.ties_up = ties_up
        if not ties_up:
            # P < 0 where x < 0 (but x = -1 with M = 2**30, P = 0, where the 2**31 less changes nothing).
            self.negative_offset = self.offset - torch.tensor([(1 << 31) if r else 0 for r in right]).view(view)

    def __call__(self, acc: torch.Tensor) -> torch.Tensor:
        """``acc``: exact int32 accumulators (int64, or float32 holding them), channels on dimension 1."""
        p = acc.to(torch.int64, copy=True).mul_(self.multiplier)  # in place: the memory layout is kept
        p.add_(self.offset if self.ties_up else torch.where(acc < 0, self.negative_offset, self.offset))
        return p.bitwise_right_shift_(self.shift)
