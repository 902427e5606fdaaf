"""OpenVINO ``benchmark_app`` (C++ and Python), in ms, every version.

2022 on: a ``Latency:`` block (``Median``/``Average``/``Avg``/``Min``/``Max``, or ``P percentile``
when ``-latency_percentile`` is not 50), spacing varying by version. With several data shapes
(``-data_shape`` on a dynamic model) the tool adds ``Latency for each data shape group:`` and a
block per group: the groups are kept apart in ``details["shape_groups"]`` (the overall figures mix
shapes). OpenVINO 2019 printed one ``Latency: X ms`` line (the median) and the throughput, with no
iteration count.
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

MARKERS = [re.compile(p) for p in (r"^\[Step 1/11\]", r"^First inference took ", r"^Count:\s", r"^Throughput:\s")]
STAT = re.compile(rf"^(Median|Average|Avg|AVG|Min|MIN|Max|MAX|\d+ percentile):\s+({NUMBER}) ms$")
NAMES = {"Avg": "average", "AVG": "average", "MIN": "min", "MAX": "max"}
GROUP = re.compile(r"^(\d+)\.\s*(.+)$")


def _latency_blocks(lines: list[str]) -> tuple[dict[str, float], list[dict[str, object]]]:
    """The overall latency block, then one per data shape group."""
    overall: dict[str, float] = {}
    groups: list[dict[str, object]] = []
    in_groups = False
    for line in lines:
        if line.startswith("Latency for each data shape group"):
            in_groups = True
        elif in_groups and (m := GROUP.match(line)):
            groups.append({"shape": m[2].strip()})
        elif m := STAT.match(line):
            key = NAMES.get(m[1], m[1].lower())
            key = "percentile" if key.endswith("percentile") else key
            target = groups[-1] if in_groups and groups else overall
            target[f"{key}_ms"] = float(m[2])
            if key == "percentile":
                target["percentile"] = int(m[1].split()[0])
    return overall, groups


def parse_run(lines: list[str], text: str) -> ToolResult:
    found: dict[str, float] = {}
    for line in lines:
        if m := re.match(r"Count:\s+(\d+) iterations", line):
            found["count"] = int(m[1])
        elif m := re.match(rf"Duration:\s+({NUMBER}) ms", line):
            found["duration_ms"] = float(m[1])
        elif m := re.match(rf"First inference took ({NUMBER}) ms", line):
            found["first_ms"] = float(m[1])
        elif m := re.match(rf"Latency:\s+({NUMBER})\s*ms", line):  # OpenVINO 2019: the median, one line
            found["median_2019_ms"] = float(m[1])
    overall, groups = _latency_blocks(lines)
    if "median_2019_ms" in found:
        overall.setdefault("median_ms", found["median_2019_ms"])
    if not overall.get("median_ms") and not overall.get("average_ms"):
        raise ToolOutputError(f"benchmark_app: no latency statistics in its output ({first_error(text)})")
    version = next((re.sub(r"^Build\s*\.+\s*", "", line) for line in lines if re.match(r"Build\s*\.{3,}", line)), None)
    devices = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Execution Devices:")), None)
    details: dict[str, object] = {"execution_devices": devices} if devices else {}
    if groups:
        details["shape_groups"] = groups
    if "percentile" in overall:
        details["latency_percentile"] = overall["percentile"]

    def us(key: str) -> float | None:
        return overall[key] * 1000.0 if key in overall else None

    return ToolResult(
        tool="benchmark_app", count=int(found["count"]) if "count" in found else None,
        avg_us=us("average_ms") or us("median_ms"), min_us=us("min_ms"), max_us=us("max_ms"), p50_us=us("median_ms"),
        first_us=found["first_ms"] * 1000.0 if "first_ms" in found else None,
        duration_s=found["duration_ms"] / 1000.0 if "duration_ms" in found else None,
        tool_version=version, runtime_version=f"openvino {version}" if version else None, details=details,
    )  # fmt: skip


def parse_benchmark_app(text: str) -> ToolResult:
    """The log's last run (a terminal log of several runs reports its last completed one)."""
    return last_completed("benchmark_app", split_runs(clean_lines(text), MARKERS), parse_run, text)
