"""Learning-rate schedules: the factor each recipe's schedule gives at known steps."""

from __future__ import annotations

import math

import pytest

from tasks.schedules import SCHEDULES, lr_factor

COMMON = {"warmup": 0, "total": 100, "steps_per_epoch": 10}


def test_poly_is_deeplabs() -> None:
    assert lr_factor(0, "poly", **COMMON) == 1.0
    assert lr_factor(50, "poly", **COMMON) == pytest.approx(0.5**0.9)
    assert lr_factor(100, "poly", **COMMON) == 0.0


def test_cosine_step_exponential_constant() -> None:
    assert lr_factor(50, "cosine", **COMMON) == pytest.approx(0.5)
    assert lr_factor(100, "cosine", **COMMON) == pytest.approx(0.0)
    assert lr_factor(25, "step", **COMMON) == pytest.approx(0.98**2)  # two whole epochs
    assert lr_factor(25, "exponential", **COMMON) == pytest.approx(0.98**2.5)
    assert lr_factor(77, "constant", **COMMON) == 1.0


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_warmup_is_linear_then_the_schedule_starts_at_one(schedule: str) -> None:
    settings = {**COMMON, "warmup": 10}
    assert [lr_factor(s, schedule, **settings) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    if schedule in ("cosine", "poly"):
        assert lr_factor(10, schedule, **settings) == 1.0
        assert lr_factor(55, schedule, **settings) == pytest.approx(
            0.5 if schedule == "cosine" else 0.5**0.9, abs=1e-12
        )
    assert not math.isnan(lr_factor(1000, schedule, **settings))
