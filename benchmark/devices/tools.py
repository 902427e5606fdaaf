"""The device-side tools as objects: each knows its argv, the files it needs pushed, its output
parser, how to ask its version, what its figures are not, and whether it returns the output
tensors the accuracy gate needs. ``choose_tool`` picks one from ``--device-tool`` and the target.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backbones.errors import UserError
from benchmark.devices.parsers import (
    ToolResult,
    parse_benchmark_app,
    parse_benchmark_model,
    parse_device_timer,
    parse_litert_benchmark,
)
from benchmark.latency.timing import Tier

TIMER_SCRIPT = Path(__file__).with_name("device_timer.py")
# Where `bench latency --device adb` looks for LiteRT's benchmark_model when --device-tool is not given.
CACHE_ENV = "BENCH_DEVICE_TOOLS"
ANDROID_BINARY = "android_aarch64_benchmark_model"
WHERE_TO_GET = (
    "get LiteRT's prebuilt nightly android_aarch64_benchmark_model (https://ai.google.dev/edge/litert/next/benchmark) "
    "or build it: bazel build -c opt --config=android_arm64 //tflite/tools/benchmark:benchmark_model; then pass "
    "--device-tool PATH or put it in {cache}"
)
TOOLS = ("script", "benchmark_model", "benchmark_app", "litert-benchmark")
# ai-edge-litert's own Python benchmark (its `litert-benchmark` console script), run as a module by
# --device-python so it needs the wheel on the target, not the script on ssh's PATH.
LITERT_BENCHMARK_MODULE = "ai_edge_litert.tools.benchmark_litert_model"


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bench" / "device-tools")


@dataclass(frozen=True)
class ToolRun:
    """One timed run's settings, as paths on the device."""

    work: str
    model: str
    inputs: str
    threads: int
    tier: Tier
    python: str = "python3"
    cpu_mask: str | None = None
    delegate: str = "xnnpack"


@dataclass(frozen=True)
class DeviceTool:
    """A tool that times a file on the target. ``name`` is the tool its parser reads."""

    name: str
    parse: Callable[[str], ToolResult]
    returns_tensors: bool = False
    reads_delegation: bool = False
    binary: Path | None = None
    command: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def argv(self, run: ToolRun) -> list[str]:
        raise NotImplementedError

    def pushes(self, work: str) -> list[tuple[Path, str]]:
        """(host file, device path) the tool itself needs in the work folder."""
        return []

    def executable(self, work: str) -> str | None:
        """A pushed binary to ``chmod +x`` there."""
        return None

    def version_query(self, python: str) -> list[str] | None:
        """argv that prints the tool's runtime version when its log does not (None: the log does)."""
        return None

    def label(self, argv: list[str]) -> str:
        return argv[0]

    def rerun_runs(self, result: ToolResult, tier: Tier) -> int | None:
        """Runs for a second, longer run when the tool cannot honour the tier's seconds itself (None: enough)."""
        return None

    def gate_argv(self, run: ToolRun, inputs: str, outputs: str) -> list[str]:
        raise NotImplementedError(f"{self.name} returns no output tensors")


@dataclass(frozen=True)
class TimerScript(DeviceTool):
    """The suite's own device-side timer: every run's time, and the gate's outputs."""

    name: str = "bench-device-timer"
    parse: Callable[[str], ToolResult] = parse_device_timer
    returns_tensors: bool = True

    def argv(self, run: ToolRun) -> list[str]:
        argv = [run.python, f"{run.work}/{TIMER_SCRIPT.name}", "--model", run.model, "--input", run.inputs,
                "--threads", str(run.threads), "--warmup-runs", str(run.tier.warmup_runs),
                "--warmup-s", f"{run.tier.warmup_s:g}", "--min-runs", str(run.tier.min_runs),
                "--min-s", f"{run.tier.min_s:g}"]  # fmt: skip
        return argv + (["--max-s", f"{run.tier.max_s:g}"] if run.tier.max_s is not None else [])

    def pushes(self, work: str) -> list[tuple[Path, str]]:
        return [(TIMER_SCRIPT, f"{work}/{TIMER_SCRIPT.name}")]

    def gate_argv(self, run: ToolRun, inputs: str, outputs: str) -> list[str]:
        """Run a batch of images through the file one by one, their outputs to an .npz (the accuracy gate)."""
        return [run.python, f"{run.work}/{TIMER_SCRIPT.name}", "--model", run.model, "--threads", str(run.threads),
                "--inputs", inputs, "--outputs", outputs]  # fmt: skip


@dataclass(frozen=True)
class BenchmarkModel(DeviceTool):
    """LiteRT's C++ benchmark_model, the device's own (``command``) or pushed (``binary``)."""

    name: str = "benchmark_model"
    parse: Callable[[str], ToolResult] = parse_benchmark_model
    reads_delegation: bool = True

    def argv(self, run: ToolRun) -> list[str]:
        tool = f"{run.work}/benchmark_model" if self.binary else str(self.command)
        tier = run.tier
        argv = [tool, f"--graph={run.model}", f"--num_threads={run.threads}", f"--warmup_runs={tier.warmup_runs}",
                f"--warmup_min_secs={tier.warmup_s:g}", f"--num_runs={tier.min_runs}", f"--min_secs={tier.min_s:g}"]
        if tier.max_s is not None:
            argv.append(f"--max_secs={tier.max_s:g}")
        argv += {"xnnpack": ["--use_xnnpack=true"], "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"],
                 "none": ["--use_xnnpack=false"]}[run.delegate]  # fmt: skip
        argv.append("--report_peak_memory_footprint=true")
        return (["taskset", run.cpu_mask] if run.cpu_mask else []) + argv

    def pushes(self, work: str) -> list[tuple[Path, str]]:
        return [(self.binary, f"{work}/benchmark_model")] if self.binary else []

    def executable(self, work: str) -> str | None:
        return f"{work}/benchmark_model" if self.binary else None

    def label(self, argv: list[str]) -> str:
        return "benchmark_model"


@dataclass(frozen=True)
class BenchmarkApp(DeviceTool):
    """OpenVINO's benchmark_app, single-stream latency (sync API, one request), comparable with benchmark_model."""

    name: str = "benchmark_app"
    parse: Callable[[str], ToolResult] = parse_benchmark_app
    command: str | None = "benchmark_app"

    def argv(self, run: ToolRun) -> list[str]:
        seconds = max(1, math.ceil(run.tier.min_s))
        return ["benchmark_app", "-m", run.model, "-d", "CPU", "-api", "sync", "-hint", "latency", "-nireq", "1",
                "-nthreads", str(run.threads), "-niter", str(run.tier.min_runs), "-t", str(seconds),
                "-infer_precision", "f32"]  # fmt: skip


@dataclass(frozen=True)
class LitertBenchmark(DeviceTool):
    """LiteRT's Python benchmark on its CPU accelerator (XNNPACK). It runs exactly ``--num_runs``, so
    a run shorter than the tier's minimum seconds is followed by one sized to fill them."""

    name: str = "litert-benchmark"
    parse: Callable[[str], ToolResult] = parse_litert_benchmark
    command: str | None = LITERT_BENCHMARK_MODULE
    runs: int | None = None
    notes: dict[str, str] = field(default_factory=lambda: {
        "runs": "litert-benchmark runs exactly --num_runs: the tier's minimum runs, or more when they took less than "
                "the tier's minimum seconds (then a longer run, sized from the previous one's fastest inference, is "
                "the one recorded)",
        "input": "the tool's own random input, not the validation image",
        "rounding": "litert-benchmark prints ms to two decimals",
    })  # fmt: skip

    def argv(self, run: ToolRun) -> list[str]:
        return [run.python, "-m", LITERT_BENCHMARK_MODULE, f"--model={run.model}", f"--num_threads={run.threads}",
                f"--warmup_runs={run.tier.warmup_runs}", f"--num_runs={self.runs or run.tier.min_runs}"]  # fmt: skip

    def version_query(self, python: str) -> list[str] | None:
        return [python, "-c", "import ai_edge_litert; print('ai_edge_litert', ai_edge_litert.__version__)"]

    def rerun_runs(self, result: ToolResult, tier: Tier) -> int | None:
        """Sized from the run's fastest inference (every run takes at least that long), so the next
        run reaches the tier's seconds unless the target got faster still; capped by ``max_s``."""
        timed_s = (result.count or 0) * result.avg_us / 1e6
        per_run_s = (result.min_us or result.avg_us) / 1e6
        if timed_s >= tier.min_s or per_run_s <= 0:
            return None
        wanted = math.ceil(tier.min_s / per_run_s * 1.05)
        if tier.max_s is not None:
            wanted = min(wanted, max(tier.min_runs, math.floor(tier.max_s / per_run_s)))
        return wanted if wanted > (result.count or 0) else None


def choose_tool(value: str | None, transport_kind: str, fmt: str) -> DeviceTool:
    """``--device-tool``: script | benchmark_model | benchmark_app | litert-benchmark | PATH (a benchmark_model binary)."""
    if value == "litert-benchmark" and fmt != "tflite":
        raise UserError(f"--device-tool litert-benchmark: times .tflite files only, not {fmt} (--runtime litert[-int8])")
    if transport_kind == "adb":
        return _adb_tool(value, fmt)
    if value in (None, "script"):
        return TimerScript()
    if value == "benchmark_model":
        return BenchmarkModel(command="benchmark_model")
    if value == "litert-benchmark":
        return LitertBenchmark()
    if value == "benchmark_app":
        if fmt != "openvino":
            raise UserError("--device-tool benchmark_app: times OpenVINO IR only (--runtime openvino)")
        return BenchmarkApp()
    binary = Path(value)
    if not binary.is_file():
        raise UserError(f"--device-tool: {value} is neither a file nor one of {', '.join(TOOLS)}")
    if fmt != "tflite":
        raise UserError(f"--device-tool {value}: a benchmark_model binary times .tflite only, not {fmt}")
    return BenchmarkModel(binary=binary)


def _adb_tool(value: str | None, fmt: str) -> DeviceTool:
    """On adb: the suite's timer where the device has a Python (``script``), else benchmark_model pushed."""
    if value == "litert-benchmark":
        raise UserError("--device-tool litert-benchmark: a Python tool (pip ai-edge-litert on the target), for "
                        "--device ssh:// or local; on adb, benchmark_model times the file")  # fmt: skip
    if value == "script":
        return TimerScript()
    if fmt != "tflite":
        raise UserError(f"--device adb: times .tflite files with benchmark_model; --runtime gives a {fmt} file")
    if value and value not in TOOLS:
        binary = Path(value)
        if not binary.is_file():
            raise UserError(f"--device-tool: {value} is not a file; " + WHERE_TO_GET.format(cache=cache_folder()))
        return BenchmarkModel(binary=binary)
    cached = cache_folder() / ANDROID_BINARY
    if not cached.is_file():
        raise UserError(f"--device adb: no benchmark_model binary ({cached} missing); "
                        + WHERE_TO_GET.format(cache=cache_folder()))  # fmt: skip
    return BenchmarkModel(binary=cached)
