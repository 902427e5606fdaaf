"""Parsers for the device tools' own outputs, in microseconds (the canonical unit).

``benchmark_model`` (LiteRT/TFLite C++): the LAST ``count=`` line is the measured phase (the first is
warm-up); tokens are ``key=value`` so scientific notation (``avg=2.95034e+06``) parses whole;
``INFO:``/``VERBOSE:``/logcat ``I tflite  :`` prefixes and ``\\r`` are stripped; three memory-line
formats across versions. ``benchmark_app`` (OpenVINO, ms) and ``onnxruntime_perf_test`` (s/ms, old
and new forms). A log without the measured phase (a failure, a truncated run) raises ToolOutputError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from backbones.errors import UserError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
PREFIX = re.compile(r"^(?:(?:INFO|VERBOSE|WARNING|ERROR|DEBUG): |[VDIWEF] tflite\s*: |\[ (?:INFO|WARNING|ERROR) \] ?)")


class ToolOutputError(UserError):
    """The device tool printed no measurement (it failed, crashed or was cut off)."""


@dataclass(frozen=True)
class ToolResult:
    """What a device tool measured: timed-phase statistics in microseconds, plus what it said."""

    tool: str
    count: int
    avg_us: float
    min_us: float | None = None
    max_us: float | None = None
    std_us: float | None = None
    p50_us: float | None = None
    p90_us: float | None = None
    p99_us: float | None = None
    first_us: float | None = None
    init_us: float | None = None
    warmup_avg_us: float | None = None
    runs_us: tuple[float, ...] | None = None
    duration_s: float | None = None
    peak_memory_mb: float | None = None
    memory: dict[str, float] = field(default_factory=dict)
    delegate: str | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    tool_version: str | None = None
    runtime_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def clean_lines(text: str) -> list[str]:
    """The log's lines without ``\\r`` and the logging prefixes."""
    lines = []
    for raw in text.replace("\r", "").split("\n"):
        line = raw.strip()
        while True:
            stripped = PREFIX.sub("", line, count=1)
            if stripped == line:
                break
            line = stripped.strip()
        lines.append(line)
    return lines


def first_error(lines: list[str], raw: str) -> str:
    for line in raw.replace("\r", "").split("\n"):
        if "ERROR" in line or "rror" in line or "failed" in line.lower():
            return line.strip()[:200]
    tail = [line for line in lines if line]
    return (tail[-1][:200] if tail else "no output")


def _values(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(rf"(\w+)=({NUMBER})", line)}


# --------------------------------------------------------------------------------------------
# LiteRT / TFLite benchmark_model
# --------------------------------------------------------------------------------------------
def parse_benchmark_model(text: str) -> ToolResult:
    lines = clean_lines(text)
    stats = [_values(line) for line in lines if re.match(r"^(?:count=|curr=\S+ count=)", line)]
    summary = next((line for line in lines if line.startswith("Inference timings in us:")), None)
    measured = stats[-1] if len(stats) >= 2 or (stats and summary) else None
    if measured is None or not measured.get("count") or summary is None:
        raise ToolOutputError(f"benchmark_model: no measured phase in its output ({first_error(lines, text)})")
    count = int(measured["count"])
    # All samples equal: only curr is printed.
    avg = measured.get("avg", measured.get("curr"))
    summary_values = dict(
        (k.strip(), float(v)) for k, v in re.findall(rf"([A-Za-z ()]+): ({NUMBER})", summary.split(":", 1)[1])
    )
    memory: dict[str, float] = {}
    for line in lines:
        if m := re.match(rf"Peak memory footprint \(MB\): init=({NUMBER}) overall=({NUMBER})", line):
            memory.update(max_rss_init_mb=float(m[1]), max_rss_overall_mb=float(m[2]))
        elif m := re.match(rf"Memory footprint delta from the start of the tool \(MB\): init=({NUMBER}) overall=({NUMBER})", line):
            memory.update(delta_init_mb=float(m[1]), delta_overall_mb=float(m[2]))
        elif m := re.match(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUMBER})", line):
            memory.update(peak_monitored_mb=float(m[1]))
        elif m := re.match(rf"- VmRSS\s*: ({NUMBER}) MB", line):
            memory.update(vmrss_end_mb=float(m[1]))
    peak = memory.get("peak_monitored_mb", memory.get("max_rss_overall_mb", memory.get("delta_overall_mb")))
    delegate = delegated = total = None
    for line in lines:
        if m := re.match(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\) node", line):
            delegated, total, delegate = int(m[1]), int(m[2]), m[3]
    version = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("TF Lite version") or line.startswith("LiteRT version")), None)
    return ToolResult(
        tool="benchmark_model", count=count, avg_us=avg, min_us=measured.get("min", avg), max_us=measured.get("max", avg),
        std_us=measured.get("std", 0.0 if "avg" not in measured else None), p50_us=measured.get("median"),
        first_us=summary_values.get("First inference"), init_us=summary_values.get("Init"),
        warmup_avg_us=summary_values.get("Warmup (avg)"), peak_memory_mb=peak, memory=memory,
        delegate=delegate, delegated_nodes=delegated, total_nodes=total, tool_version=version,
        details={k: v for k, v in measured.items() if k in ("p5", "p95", "first", "curr")},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# OpenVINO benchmark_app
# --------------------------------------------------------------------------------------------
def parse_benchmark_app(text: str) -> ToolResult:
    lines = clean_lines(text)
    found: dict[str, float] = {}
    for line in lines:
        if m := re.match(r"Count:\s+(\d+) iterations", line):
            found["count"] = int(m[1])
        elif m := re.match(rf"Duration:\s+({NUMBER}) ms", line):
            found["duration_ms"] = float(m[1])
        elif m := re.match(rf"(Median|Average|Min|Max):\s+({NUMBER}) ms", line):
            found[m[1].lower()] = float(m[2])
        elif m := re.match(rf"First inference took ({NUMBER}) ms", line):
            found["first"] = float(m[1])
    if "count" not in found or ("median" not in found and "average" not in found):
        raise ToolOutputError(f"benchmark_app: no latency statistics in its output ({first_error(lines, text)})")
    version = next((re.sub(r"^Build\s*\.+\s*", "", line) for line in lines if re.match(r"Build\s*\.{3,}", line)), None)
    devices = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Execution Devices:")), None)

    def us(key: str) -> float | None:
        return found[key] * 1000.0 if key in found else None

    return ToolResult(
        tool="benchmark_app", count=int(found["count"]), avg_us=us("average") or us("median"), min_us=us("min"),
        max_us=us("max"), p50_us=us("median"), first_us=us("first"),
        duration_s=found["duration_ms"] / 1000.0 if "duration_ms" in found else None,
        tool_version=version, runtime_version=f"openvino {version}" if version else None,
        details={"execution_devices": devices} if devices else {},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# ONNX Runtime onnxruntime_perf_test
# --------------------------------------------------------------------------------------------
def parse_onnxruntime_perf_test(text: str) -> ToolResult:
    lines = clean_lines(text)
    found: dict[str, float] = {}
    for line in lines:
        if m := re.match(rf"Average (?:inference )?time cost:\s*({NUMBER}) ms", line):
            found["avg_ms"] = float(m[1])
        elif m := re.match(r"Total inference requests:\s*(\d+)", line):
            found["count"] = int(m[1])
        elif m := re.match(r"Runs:\s*(\d+)", line):
            found.setdefault("count", int(m[1]))
        elif m := re.match(rf"First inference time cost:\s*({NUMBER}) ms", line):
            found["first_ms"] = float(m[1])
        elif m := re.match(rf"Session creation time cost:\s*({NUMBER}) s", line):
            found["init_s"] = float(m[1])
        elif m := re.match(rf"Total inference run time:\s*({NUMBER}) s", line):
            found["duration_s"] = float(m[1])
        elif m := re.match(rf"(Min|Max|P50|P90|P95|P99|P999) Latency(?::| is)\s*({NUMBER})\s*s", line):
            found[m[1].lower() + "_s"] = float(m[2])
        elif m := re.match(r"Peak working set size:\s*(\d+)", line):
            found["peak_bytes"] = int(m[1])
    if "avg_ms" not in found:
        raise ToolOutputError(f"onnxruntime_perf_test: no average time in its output ({first_error(lines, text)})")

    def us(key: str) -> float | None:
        return found[key] * 1e6 if key in found else None

    return ToolResult(
        tool="onnxruntime_perf_test", count=int(found.get("count", 0)), avg_us=found["avg_ms"] * 1000.0,
        min_us=us("min_s"), max_us=us("max_s"), p50_us=us("p50_s"), p90_us=us("p90_s"), p99_us=us("p99_s"),
        first_us=found["first_ms"] * 1000.0 if "first_ms" in found else None,
        init_us=us("init_s"), duration_s=found.get("duration_s"),
        peak_memory_mb=found["peak_bytes"] / 2**20 if "peak_bytes" in found else None,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# LiteRT's Python litert-benchmark (ai-edge-litert's console script, benchmark_litert_model)
# --------------------------------------------------------------------------------------------
LITERT_BENCHMARK_LINE = re.compile(rf"^(Model initialization|Warmup \((?:first|avg)\)|Inference \((?:avg|min|max|median|std|p5|p95)\)):"
                                   rf"\s+({NUMBER}) ms(?: \((\d+) runs\))?$")  # fmt: skip


def parse_litert_benchmark(text: str) -> ToolResult:
    """Its ``BENCHMARK RESULTS`` block (ms, two decimals; no per-run list, no p90 or p99)."""
    lines = [line.strip() for line in text.replace("\r", "").split("\n")]
    ms: dict[str, float] = {}
    runs: dict[str, int] = {}
    for line in lines:
        if m := LITERT_BENCHMARK_LINE.match(line):
            ms[m[1]] = float(m[2])
            if m[3]:
                runs[m[1]] = int(m[3])
    if "Inference (avg)" not in ms or not runs.get("Inference (avg)"):
        logged = [line.split(" ERROR benchmark_litert_model: ", 1)[1] for line in lines if " ERROR benchmark_litert_model: " in line]
        said = logged[-1] if logged else next((line for line in reversed(lines) if line), "no output")
        hint = "; pip install ai-edge-litert there or pass --device-python" if "No module named 'ai_edge_litert" in said else ""
        raise ToolOutputError(f"litert-benchmark: no BENCHMARK RESULTS in its output ({said[:200]}){hint}")
    us = lambda key: ms[key] * 1000.0 if key in ms else None  # noqa: E731
    accelerated = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Fully accelerated:")), None)
    xnnpack = any("XNNPACK delegate for CPU" in line or "XNNPACK CPU accelerator" in line for line in lines)
    return ToolResult(
        tool="litert-benchmark", count=runs["Inference (avg)"], avg_us=us("Inference (avg)"), min_us=us("Inference (min)"),
        max_us=us("Inference (max)"), std_us=us("Inference (std)"), p50_us=us("Inference (median)"),
        first_us=us("Warmup (first)"), init_us=us("Model initialization"), warmup_avg_us=us("Warmup (avg)"),
        delegate="XNNPACK (LiteRT CPU accelerator)" if xnnpack else None,
        details={"p5_ms": ms.get("Inference (p5)"), "p95_ms": ms.get("Inference (p95)"),
                 "warmup_runs": runs.get("Warmup (avg)"), "fully_accelerated": accelerated},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The suite's own device-side script (one JSON line)
# --------------------------------------------------------------------------------------------
def parse_device_timer(text: str) -> ToolResult:
    line = next((line for line in reversed(text.replace("\r", "").splitlines()) if line.startswith("{")), None)
    try:
        data = json.loads(line) if line else None
    except ValueError:
        data = None
    if not data or not data.get("runs_us"):
        lines = clean_lines(text)
        raise ToolOutputError(f"device timer: no timed runs in its output ({first_error(lines, text)})")
    runs = tuple(float(v) for v in data["runs_us"])
    return ToolResult(
        tool="bench-device-timer", count=len(runs), avg_us=sum(runs) / len(runs), min_us=min(runs), max_us=max(runs),
        first_us=float(data["first_us"]), init_us=data.get("init_us"), runs_us=runs, duration_s=float(data["duration_s"]),
        runtime_version=data.get("runtime_version"), tool_version=f"python {data.get('python')}",
        details={"warmup_runs": data.get("warmup_runs"), **(data.get("details") or {})},
    )  # fmt: skip


PARSERS = {
    "benchmark_model": parse_benchmark_model,
    "benchmark_app": parse_benchmark_app,
    "onnxruntime_perf_test": parse_onnxruntime_perf_test,
    "bench-device-timer": parse_device_timer,
    "litert-benchmark": parse_litert_benchmark,
}
