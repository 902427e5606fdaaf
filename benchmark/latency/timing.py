"""On-device latency timing: tiers, the timing loop and its statistics.

Methodology after TFLite's ``benchmark_model`` and MLPerf Mobile (see
shared/reference/paper-numbers.md, "What MLPerf Mobile and TFLite do for latency"): a first run,
warm-up runs for at least N runs and T seconds, then timed runs until both a run count and a
duration are reached; count, first, min, mean, std and percentiles are reported with the context
the number depends on (runtime and version, threads, batch, resolution, precision, layout).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from backbones.errors import UserError
from benchmark.runs.schema import LatencyStats

Clock = Callable[[], float]
# Runs one call and returns its duration in seconds (wall clock by default, CUDA events on a GPU).
Timer = Callable[[Callable[[], Any]], float]


# --------------------------------------------------------------------------------------------
# Tiers: how long to warm up and measure
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tier:
    """Warm-up and measurement lengths; both the run count and the duration must be reached.

    ``max_s`` stops the timed phase early, like TFLite's ``max_secs`` (``None``: no cap, as MLPerf).
    """

    name: str
    warmup_runs: int
    warmup_s: float
    min_runs: int
    min_s: float
    max_s: float | None = None

    def __post_init__(self) -> None:
        if self.warmup_runs < 0 or self.min_runs < 1 or self.warmup_s < 0 or self.min_s < 0:
            raise UserError(f"tier {self.name}: run counts and seconds must be >= 0 (>= 1 timed run)")


TIERS = {
    # MLPerf Mobile single-stream: at least 1024 queries and 60 s.
    "normal": Tier("normal", warmup_runs=10, warmup_s=2.0, min_runs=1024, min_s=60.0),
    # For CI and quick looks: a few seconds (TFLite's defaults are 50 runs, 1 s minimum).
    "quick": Tier("quick", warmup_runs=5, warmup_s=1.0, min_runs=50, min_s=3.0, max_s=20.0),
}


# --------------------------------------------------------------------------------------------
# Timing loop (clock and timer injectable, so it runs on a fake clock in tests)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timings:
    """Raw durations of one measurement, in seconds."""

    first_s: float
    warmup_runs: int
    durations_s: tuple[float, ...]
    duration_s: float


def wall_timer(clock: Clock = time.perf_counter) -> Timer:
    def timer(call: Callable[[], Any]) -> float:
        start = clock()
        call()
        return clock() - start

    return timer


def run_timed(call: Callable[[], Any], tier: Tier, *, clock: Clock = time.perf_counter, timer: Timer | None = None) -> Timings:
    """First run, warm-up (runs and seconds, the first included), then the timed runs."""
    timer = timer or wall_timer(clock)
    warmup_start = clock()
    first = timer(call)
    warmup_runs = 1
    while warmup_runs < tier.warmup_runs or clock() - warmup_start < tier.warmup_s:
        timer(call)
        warmup_runs += 1
    durations: list[float] = []
    start = clock()
    while True:
        durations.append(timer(call))
        elapsed = clock() - start
        if len(durations) >= tier.min_runs and elapsed >= tier.min_s:
            break
        if tier.max_s is not None and elapsed >= tier.max_s:
            break
    return Timings(first, warmup_runs, tuple(durations), clock() - start)


# --------------------------------------------------------------------------------------------
# Statistics (a pure function of the durations)
# --------------------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default ``linear`` method)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(durations_s: Sequence[float], first_s: float, duration_s: float | None = None) -> LatencyStats:
    """Count, first, min, mean, population std (as TFLite), p50/p90/p99 and max, in milliseconds."""
    if not durations_s:
        raise ValueError("no timed runs to summarize")
    ms = sorted(1000.0 * d for d in durations_s)
    return LatencyStats(
        runs=len(ms),
        duration_s=float(sum(durations_s) if duration_s is None else duration_s),
        first_ms=1000.0 * first_s,
        min_ms=ms[0],
        mean_ms=statistics.fmean(ms),
        std_ms=statistics.pstdev(ms),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1],
    )


def measure(call: Callable[[], Any], tier: Tier, *, clock: Clock = time.perf_counter, timer: Timer | None = None) -> LatencyStats:
    timings = run_timed(call, tier, clock=clock, timer=timer)
    return summarize(timings.durations_s, timings.first_s, timings.duration_s)



def custom_tier(base: Tier, **overrides: Any) -> Tier:
    """``base`` with TFLite-style overrides (--warmup-runs, --min-runs, ...); named ``custom``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return base
    return replace(base, name="custom", **given)

