"""An integer-input ``.tflite`` gets the same input here and on a device: TFLite's QUANTIZE rounding
(half away from zero), not numpy's half-to-even, in both copies of the conversion."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.devices.device_timer import quantize_input as device_quantize
from benchmark.latency.runtimes.litert import quantize_input

SCALE, ZERO = 0.007843137718737125, -1  # the int8 input of an exported MobileNet (inception preset, [-1, 1])


def test_half_steps_round_away_from_zero_as_tflite_does() -> None:
    halves = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5], np.float32) * np.float32(0.25)
    assert quantize_input(halves, 0.25, 0, np.int8).tolist() == [1, -1, 2, -2, 3, -3, 127]
    assert quantize_input(halves, 0.25, 3, np.int8).tolist() == [4, 2, 5, 1, 6, 0, 127]  # zero point, clamped


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_the_device_timers_copy_equals_the_suites(dtype) -> None:
    # Every pixel of the inception preset sits on (or a float32 ulp beside) a half step of this grid,
    # where half-to-even and half-away rounding part: on 40 of the 256 pixel values.
    pixels = np.arange(256, dtype=np.float32)
    normalised = (pixels / 255.0 - 0.5) / 0.5
    noise = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    zero = ZERO if dtype is np.int8 else 127
    for batch in (normalised, noise):
        here, there = quantize_input(batch, SCALE, zero, dtype), device_quantize(batch, SCALE, zero, dtype)
        assert here.dtype == there.dtype == dtype and np.array_equal(here, there)
    half_to_even = np.clip(np.round(normalised / SCALE) + zero, np.iinfo(dtype).min, np.iinfo(dtype).max)
    assert (quantize_input(normalised, SCALE, zero, dtype) != half_to_even).sum() == 40
