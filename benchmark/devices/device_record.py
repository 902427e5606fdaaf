"""A device run's latency record: the tool's figures in ms, what the target was, what the tool said
of its delegate, and which file was timed. Made only from a parsed measurement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmark.devices.parsers import ToolResult
from benchmark.devices.tools import DeviceTool
from benchmark.latency.timing import Tier, summarize
from benchmark.runs.records import environment
from benchmark.runs.schema import GateResult, LatencyRecord, LatencyStats
from tasks.provenance import sha256_of

LAYOUTS = {"tflite": "NHWC", "onnx": "NCHW", "openvino": "NCHW"}


@dataclass(frozen=True)
class Exported:
    """One runtime's exported file on the host and what goes with it."""

    runtime: str
    fmt: str
    int8: bool
    path: Path
    files: list[Path]
    details: dict[str, Any]


@dataclass(frozen=True)
class ToolRunOutcome:
    """What one run of the tool on the target gave: its argv, exit status, log and the device's temperatures."""

    argv: list[str]
    shell_code: int
    rc: int | None
    log: str
    temp_before_c: float | None
    cooldown_waited_s: float | None
    temp_after_c: float | None


def stats_from(result: ToolResult) -> tuple[LatencyStats, dict[str, Any]]:
    """The record's statistics in ms; the per-run list when the tool gives it, else the tool's own
    summary, with which figures it did not give said in ``notes``."""
    if result.runs_us:
        stats = summarize([us / 1e6 for us in result.runs_us], (result.first_us or 0.0) / 1e6, result.duration_s)
        return stats, {}
    ms = lambda us: None if us is None else us / 1000.0  # noqa: E731
    notes = {}
    p50 = result.p50_us
    if p50 is None:
        p50 = result.avg_us
        notes["p50"] = "the tool prints no median: p50_ms is its average"
    if result.count is None:
        notes["runs"] = "the tool printed no iteration count: runs is 0"
    stats = LatencyStats(
        runs=result.count or 0, duration_s=result.duration_s or 0.0, first_ms=ms(result.first_us), min_ms=ms(result.min_us),
        mean_ms=ms(result.avg_us), std_ms=ms(result.std_us), p50_ms=ms(p50), p90_ms=ms(result.p90_us),
        p99_ms=ms(result.p99_us), max_ms=ms(result.max_us),
    )  # fmt: skip
    return stats, notes


def delegate_fallback(result: ToolResult, wanted: str) -> str | None:
    """Why the CPU kernels ran instead of ``--delegate``, only when the log says so (the delegate
    took none of the graph); a log that says nothing about it is not a fallback."""
    if wanted == "none":
        return None
    said = [d for d in result.delegations if wanted in d.name.lower()]
    if said and all(d.coverage == "none" for d in said):
        return f"--delegate {wanted}: the tool says the delegate took none of the graph ({said[-1].line[:160]}); the CPU kernels ran"
    return None


def target_block(transport: Any, facts: dict[str, Any], tool: DeviceTool, outcome: ToolRunOutcome, result: ToolResult,
                 exported: Exported, delegate_wanted: str, cpu_mask: str | None,
                 cooldown_c: float | None) -> dict[str, Any]:  # fmt: skip
    """The record's ``target``: the device, its temperatures, the tool and what it said of its delegate, the file."""
    delegate, delegated = result.delegate, result.delegated_nodes
    if tool.returns_tensors:  # the suite's timer counts the XNNPACK nodes itself
        delegated = result.details.get("delegate_nodes")
        delegate = "XNNPACK (LiteRT default)" if exported.fmt == "tflite" else None
    return {
        "transport": transport.kind,
        "address": transport.address,
        **{k: facts[k] for k in ("model", "manufacturer", "soc", "abi", "os", "kernel", "cpus", "max_freqs_khz",
                                 "governors")},
        "emulated": facts.get("emulated"),
        "temp_before_c": outcome.temp_before_c,
        "temp_after_c": outcome.temp_after_c,
        "cooldown_waited_s": outcome.cooldown_waited_s,
        "cooldown_c": cooldown_c,
        "tool": {"name": result.tool, "version": result.tool_version, "argv": outcome.argv},
        "runtime_version": result.runtime_version,
        "delegate": delegate,
        "delegated_nodes": delegated,
        "total_nodes": result.total_nodes,
        "delegate_coverage": result.delegate_coverage,
        "delegate_fallback": delegate_fallback(result, delegate_wanted) if tool.reads_delegation else None,
        "cpu_mask": cpu_mask,
        "file": {"name": exported.path.name, "sha256": sha256_of(exported.path), "bytes": exported.path.stat().st_size},
    }  # fmt: skip


@dataclass(frozen=True)
class RecordContext:
    """What every runtime's record of one ``bench latency --device`` run shares."""

    task: str
    cfg: dict[str, Any]
    device: str
    threads: int
    tier: Tier
    source: str
    weights: dict[str, Any] | None


def build_record(ctx: RecordContext, exported: Exported, tool: DeviceTool, result: ToolResult, target: dict[str, Any],
                 runtime_version: str | None, accuracy: GateResult | None) -> LatencyRecord:  # fmt: skip
    stats, notes = stats_from(result)
    notes.update(tool.notes)
    return LatencyRecord.of_model(
        ctx.task, ctx.cfg, runtime=exported.runtime, runtime_version=runtime_version or "unknown",
        device=ctx.device, threads=ctx.threads, batch_size=1, precision="int8" if exported.int8 else "fp32",
        layout=LAYOUTS[exported.fmt], tier=ctx.tier.name,
        methodology=dict(asdict(ctx.tier), timed_by=f"{result.tool} on the device", notes=notes),
        input=f"{ctx.source}, saved as .npy and pushed",
        init_ms=(result.init_us or 0.0) / 1000.0, stats=stats, postprocess=None, accuracy=accuracy,
        peak_memory_mb=result.peak_memory_mb,
        memory={"method": f"{result.tool} on the device" if result.memory or result.peak_memory_mb else "not measured",
                **result.memory},
        details={"export": exported.details, **{k: v for k, v in result.details.items() if k != "delegate_nodes"}},
        environment=environment("cpu"), weights=ctx.weights, target=target,
    )  # fmt: skip
