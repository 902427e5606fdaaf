"""The fast integer paths (tasks.tflite.fixed_point.ConvRequantization, the float32 convolution bound
and the elementwise tables of tasks.tflite.int8) equal the step-by-step integer arithmetic they stand for."""

from __future__ import annotations

import torch

from tasks.tflite.fixed_point import (
    ConvRequantization,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_ties_up,
    quantize_multiplier,
)


def _step_by_step(acc: torch.Tensor, pairs: list[tuple[int, int]], ties_up: bool) -> torch.Tensor:
    multiplier = torch.tensor([m for m, _ in pairs]).view(1, -1, 1, 1)
    shift = torch.tensor([s for _, s in pairs]).view(1, -1, 1, 1)
    function = multiply_by_quantized_multiplier_ties_up if ties_up else multiply_by_quantized_multiplier
    return function(acc, multiplier, shift)


def test_fused_requantization_equals_gemmlowp_step_by_step() -> None:
    """Random accumulators (many ties: multiples of 32) through channels of every shift from 2
    left to 14 right, exact powers of two among them."""
    generator = torch.Generator().manual_seed(0)
    reals = [0.5, 0.75, 2.0 ** -7, 1.7, 3.1, 0.9999999] + (2.0 ** -torch.linspace(0, 14.5, 58, dtype=torch.float64)).tolist()
    pairs = [quantize_multiplier(r) for r in reals]
    assert {s for _, s in pairs} == set(range(-14, 3))
    acc = torch.randint(-(1 << 23), 1 << 23, (4, len(pairs), 16, 16), generator=generator)
    acc[0] = torch.randint(-64, 64, (len(pairs), 16, 16), generator=generator) * 32  # many ties
    acc[1, :, 0, :4] = torch.tensor([-1, 0, 1, -2])
    for ties_up in (True, False):
        fused = ConvRequantization([m for m, _ in pairs], [s for _, s in pairs], ties_up=ties_up)
        expected = _step_by_step(acc, pairs, ties_up)
        assert torch.equal(fused(acc), expected)
        assert torch.equal(fused(acc.float().contiguous(memory_format=torch.channels_last)), expected)
