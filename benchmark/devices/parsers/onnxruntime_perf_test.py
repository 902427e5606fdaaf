"""ONNX Runtime ``onnxruntime_perf_test``: session and totals in s, averages in ms, latencies in s.

Wordings across versions: ``Average time cost: X ms`` and ``P50 Latency is X sec`` (before 2020),
``Average inference time cost:X ms`` (2020, no space after the colon), ``Average inference time
cost: X ms`` and ``Average inference time cost total: X ms`` (recent builds), plus the
machine-readable repeats (``Runs:N``, ``Peak working set size:N``).
"""

from __future__ import annotations

import re

from benchmark.devices.parsers.common import (
    NUMBER,
    ToolOutputError,
    ToolResult,
    clean_lines,
    first_error,
    last_completed,
    split_runs,
)

MARKERS = [re.compile(p) for p in (r"^Session creation time cost:", r"^First inference time cost:",
                                   r"^Total (?:inference )?time cost:", r"^Total (?:inference requests|iterations):",
                                   r"^Average (?:inference )?time cost", r"^Total (?:inference )?run time:")]  # fmt: skip
LINES = {
    "avg_ms": re.compile(rf"^Average (?:inference )?time cost(?: total)?:\s*({NUMBER})\s*ms"),
    "count": re.compile(r"^(?:Total inference requests|Total iterations):\s*(\d+)"),
    "runs": re.compile(r"^Runs:\s*(\d+)"),
    "first_ms": re.compile(rf"^First inference time cost:\s*({NUMBER})\s*ms"),
    "init_s": re.compile(rf"^Session creation time cost:\s*({NUMBER})\s*s"),
    "duration_s": re.compile(rf"^Total (?:inference )?run time:\s*({NUMBER})\s*s"),
    "peak_bytes": re.compile(r"^Peak working set size:\s*(\d+)"),
}
LATENCY = re.compile(rf"^(Min|Max|P50|P90|P95|P99|P999) Latency(?::| is)\s*({NUMBER})\s*s")


def parse_run(lines: list[str], text: str) -> ToolResult:
    found: dict[str, float] = {}
    for line in lines:
        for key, pattern in LINES.items():
            if m := pattern.match(line):
                found.setdefault(key, float(m[1]))
        if m := LATENCY.match(line):
            found[m[1].lower() + "_s"] = float(m[2])
    if "avg_ms" not in found:
        raise ToolOutputError(f"onnxruntime_perf_test: no average time in its output ({first_error(text)})")

    def us(key: str, scale: float = 1e6) -> float | None:
        return found[key] * scale if key in found else None

    count = found.get("count", found.get("runs"))
    return ToolResult(
        tool="onnxruntime_perf_test", count=int(count) if count is not None else None, avg_us=found["avg_ms"] * 1000.0,
        min_us=us("min_s"), max_us=us("max_s"), p50_us=us("p50_s"), p90_us=us("p90_s"), p99_us=us("p99_s"),
        first_us=us("first_ms", 1000.0), init_us=us("init_s"), duration_s=found.get("duration_s"),
        peak_memory_mb=found["peak_bytes"] / 2**20 if found.get("peak_bytes") else None,
    )  # fmt: skip


def parse_onnxruntime_perf_test(text: str) -> ToolResult:
    """The log's last run (a terminal log of several runs reports its last completed one)."""
    return last_completed("onnxruntime_perf_test", split_runs(clean_lines(text), MARKERS), parse_run, text)
