"""LiteRT / TFLite ``benchmark_model`` (the C++ binary and the benchmark APK's logcat), every version.

The run's last ``count=`` line before its summary is the measured phase (the first is warm-up).
Summary forms: ``Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference
(avg): X`` (TF 2.3 on) and ``Average inference timings in us: Warmup: W, Init: I, no stats: X`` /
``..., Inference: X`` (TF 1.x to 2.2). Delegation is read from each line form the tool prints:
``Replacing K out of N node(s) with delegate (X) node`` (node counts), ``Explicitly applied X
delegate, and the model graph will be completely|partially executed by the delegate``, ``Though X
delegate is explicitly applied, the model graph will not be executed by the delegate``, the GPU
delegate's ``N operations will run on the GPU, and the remaining M ...`` and XNNPACK applied by
default (``Created TensorFlow Lite XNNPACK delegate for CPU.``, coverage not said).
"""

from __future__ import annotations

import re

from benchmark.devices.parsers.common import (
    NUMBER,
    Delegation,
    ToolOutputError,
    ToolResult,
    clean_lines,
    first_error,
    last_completed,
    split_runs,
    values,
)

STATS = re.compile(r"^(?:count=|curr=\S+ count=)")
SUMMARY = re.compile(r"^(?:Average )?[Ii]nference timings in us: (.*)$")
MARKERS = [re.compile(p) for p in (r"^STARTING!$", r"^Loaded model ", r"^Initialized session in ", SUMMARY.pattern)]
REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node(?:, yielding (\d+) partitions)?")
APPLIED = re.compile(r"Explicitly applied (\w+) delegate, and the model graph will be (completely|partially) executed by "
                     r"the delegate(?: w/ (\d+) delegate kernels)?")  # fmt: skip
NOT_APPLIED = re.compile(r"Though (\w+) delegate is explicitly applied, the model graph will not be executed by the delegate")
GPU_SPLIT = re.compile(r"(?:First )?(\d+) operations will run on the GPU, and the remaining (\d+)")
XNNPACK_DEFAULT = re.compile(r"Created TensorFlow Lite XNNPACK delegate for CPU")
MEMORY = {
    "max_rss": re.compile(rf"Peak memory footprint \(MB\): init=({NUMBER}) overall=({NUMBER})"),
    "delta": re.compile(rf"Memory footprint delta from the start of the tool \(MB\): init=({NUMBER}) overall=({NUMBER})"),
}
PEAK_MONITORED = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUMBER})")
VMRSS = re.compile(rf"- VmRSS\s*: ({NUMBER}) MB")


def delegations(lines: list[str]) -> tuple[Delegation, ...]:
    """Every statement the log makes about a delegate taking (part of) the graph, in order."""
    found = []
    for line in lines:
        if m := REPLACING.search(line):
            done, total = int(m[1]), int(m[2])
            coverage = "none" if done == 0 else "full" if done == total else "partial"
            found.append(Delegation(m[3], coverage, done, total, int(m[4]) if m[4] else None, line))
        elif m := APPLIED.search(line):
            found.append(Delegation(m[1], "full" if m[2] == "completely" else "partial", kernels=int(m[3]) if m[3] else None,
                                    line=line))  # fmt: skip
        elif m := NOT_APPLIED.search(line):
            found.append(Delegation(m[1], "none", line=line))
        elif m := GPU_SPLIT.search(line):
            on_gpu, rest = int(m[1]), int(m[2])
            found.append(Delegation("GPU", "none" if on_gpu == 0 else "partial", on_gpu, on_gpu + rest, line=line))
        elif XNNPACK_DEFAULT.search(line) and not any(d.name == "XNNPACK" for d in found):
            found.append(Delegation("XNNPACK", None, line=line))
    return tuple(found)


def primary(found: tuple[Delegation, ...]) -> Delegation | None:
    """The delegate the run is about: the last explicitly applied one, else the last that said its
    coverage, else XNNPACK created by default."""
    for test in (lambda d: d.name != "XNNPACK" and "XNNPack" not in d.name, lambda d: d.coverage is not None, lambda d: True):
        chosen = [d for d in found if test(d)]
        if chosen:
            return chosen[-1]
    return None


def memory_of(lines: list[str]) -> tuple[dict[str, float], float | None, bool]:
    """The memory lines of every version, the peak, and whether the tool printed ``init=0 overall=0``
    (platforms where it does not measure memory): that is "not reported", never 0 MB."""
    memory: dict[str, float] = {}
    zero = False
    for line in lines:
        for kind, pattern in MEMORY.items():
            if m := pattern.match(line):
                if float(m[1]) or float(m[2]):
                    memory.update({f"{kind}_init_mb": float(m[1]), f"{kind}_overall_mb": float(m[2])})
                else:
                    zero = True
        if m := PEAK_MONITORED.match(line):
            memory["peak_monitored_mb"] = float(m[1])
        elif m := VMRSS.match(line):
            memory["vmrss_end_mb"] = float(m[1])
    peak = memory.get("peak_monitored_mb", memory.get("max_rss_overall_mb", memory.get("delta_overall_mb")))
    return memory, peak or None, zero


def _summary(line: str) -> dict[str, float]:
    pairs = dict((k.strip(), float(v)) for k, v in re.findall(rf"([A-Za-z ()]+): ({NUMBER})", line))
    if "Warmup" in pairs:  # TF 1.x .. 2.2: Warmup is the warm-up average; no first inference is printed.
        pairs["Warmup (avg)"] = pairs.pop("Warmup")
        pairs["Inference (avg)"] = pairs.pop("no stats", pairs.pop("Inference", None))
    return pairs


def parse_run(lines: list[str], text: str) -> ToolResult:
    summary_at = next((i for i, line in enumerate(lines) if SUMMARY.match(line)), None)
    stats = [values(line) for line in lines[: summary_at if summary_at is not None else len(lines)] if STATS.match(line)]
    measured = stats[-1] if stats and summary_at is not None else None
    if measured is None or not measured.get("count"):
        raise ToolOutputError(f"benchmark_model: no measured phase in its output ({first_error(text)})")
    summary = _summary(SUMMARY.match(lines[summary_at])[1])
    avg = measured.get("avg", measured.get("curr"))  # all samples equal: only curr is printed
    memory, peak, zero = memory_of(lines)
    found = delegations(lines)
    chosen = primary(found)
    version = next((line.split(":", 1)[1].strip() for line in lines if line.startswith(("TF Lite version", "LiteRT version"))), None)
    return ToolResult(
        tool="benchmark_model", count=int(measured["count"]), avg_us=avg, min_us=measured.get("min", avg),
        max_us=measured.get("max", avg), std_us=measured.get("std", 0.0 if "avg" not in measured else None),
        p50_us=measured.get("median"), first_us=summary.get("First inference"), init_us=summary.get("Init"),
        warmup_avg_us=summary.get("Warmup (avg)"), peak_memory_mb=peak, memory=memory,
        delegate=chosen.name if chosen else None, delegated_nodes=chosen.nodes if chosen else None,
        total_nodes=chosen.total_nodes if chosen else None, delegate_coverage=chosen.coverage if chosen else None,
        delegations=found, tool_version=version,
        details={**{k: v for k, v in measured.items() if k in ("p5", "p95", "first", "curr")},
                 **({"memory": "the tool printed init=0 overall=0: not measured on this platform"} if zero else {})},
    )  # fmt: skip


def parse_benchmark_model(text: str) -> ToolResult:
    """The measurement of the log's last run (a log of several runs reports its last completed one)."""
    lines = clean_lines(text)
    return last_completed("benchmark_model", split_runs(lines, MARKERS), parse_run, text)
