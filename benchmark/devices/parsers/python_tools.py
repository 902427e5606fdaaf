"""LiteRT's Python ``litert-benchmark`` (ai-edge-litert's console script) and the suite's own
device-side timer (one JSON line)."""

from __future__ import annotations

import json
import re

from benchmark.devices.parsers.common import NUMBER, ToolOutputError, ToolResult, first_error

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
        raise ToolOutputError(f"device timer: no timed runs in its output ({first_error(text)})")
    runs = tuple(float(v) for v in data["runs_us"])
    return ToolResult(
        tool="bench-device-timer", count=len(runs), avg_us=sum(runs) / len(runs), min_us=min(runs), max_us=max(runs),
        first_us=float(data["first_us"]), init_us=data.get("init_us"), runs_us=runs, duration_s=float(data["duration_s"]),
        runtime_version=data.get("runtime_version"), tool_version=f"python {data.get('python')}",
        details={"warmup_runs": data.get("warmup_runs"), **(data.get("details") or {})},
    )  # fmt: skip
