"""Which device-side tool times a file, where its binary comes from, and the exact argv it gets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from backbones.errors import UserError
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
# What a tool's figures are not, said in the record's methodology notes.
TOOL_NOTES = {
    "litert-benchmark": {
        "runs": "litert-benchmark runs exactly --num_runs (the tier's minimum runs); the tier's seconds do not apply",
        "input": "the tool's own random input, not the validation image",
        "rounding": "litert-benchmark prints ms to two decimals",
    },
}


def cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "bench" / "device-tools")


@dataclass(frozen=True)
class ToolChoice:
    """name: the parser's tool; binary: a host file pushed to the device (None: the device's own)."""

    name: str
    binary: Path | None = None
    command: str | None = None


def choose_tool(value: str | None, transport_kind: str, fmt: str) -> ToolChoice:
    """``--device-tool``: script | benchmark_model | benchmark_app | litert-benchmark | PATH (a benchmark_model binary)."""
    if value == "litert-benchmark" and fmt != "tflite":
        raise UserError(f"--device-tool litert-benchmark: times .tflite files only, not {fmt} (--runtime litert[-int8])")
    if transport_kind == "adb":
        if value == "litert-benchmark":
            raise UserError("--device-tool litert-benchmark: a Python tool (pip ai-edge-litert on the target), for "
                            "--device ssh:// or local; on adb, benchmark_model times the file")  # fmt: skip
        if fmt != "tflite":
            raise UserError(f"--device adb: times .tflite files with benchmark_model; --runtime gives a {fmt} file")
        if value and value not in TOOLS:
            binary = Path(value)
            if not binary.is_file():
                raise UserError(f"--device-tool: {value} is not a file; " + WHERE_TO_GET.format(cache=cache_folder()))
            return ToolChoice("benchmark_model", binary)
        cached = cache_folder() / ANDROID_BINARY
        if not cached.is_file():
            raise UserError(f"--device adb: no benchmark_model binary ({cached} missing); "
                            + WHERE_TO_GET.format(cache=cache_folder()))  # fmt: skip
        return ToolChoice("benchmark_model", cached)
    if value in (None, "script"):
        return ToolChoice("bench-device-timer")
    if value == "benchmark_model":
        return ToolChoice("benchmark_model", command="benchmark_model")
    if value == "litert-benchmark":
        return ToolChoice("litert-benchmark", command=LITERT_BENCHMARK_MODULE)
    if value == "benchmark_app":
        if fmt != "openvino":
            raise UserError("--device-tool benchmark_app: times OpenVINO IR only (--runtime openvino)")
        return ToolChoice("benchmark_app", command="benchmark_app")
    binary = Path(value)
    if not binary.is_file():
        raise UserError(f"--device-tool: {value} is neither a file nor one of {', '.join(TOOLS)}")
    if fmt != "tflite":
        raise UserError(f"--device-tool {value}: a benchmark_model binary times .tflite only, not {fmt}")
    return ToolChoice("benchmark_model", binary)


def benchmark_model_argv(tool: str, graph: str, threads: int, tier: Tier, cpu_mask: str | None,
                         delegate: str = "xnnpack") -> list[str]:  # fmt: skip
    """LiteRT benchmark_model with the suite's tier (warm-up runs and seconds, minimum runs and seconds)."""
    argv = [tool, f"--graph={graph}", f"--num_threads={threads}", f"--warmup_runs={tier.warmup_runs}",
            f"--warmup_min_secs={tier.warmup_s:g}", f"--num_runs={tier.min_runs}", f"--min_secs={tier.min_s:g}"]
    if tier.max_s is not None:
        argv.append(f"--max_secs={tier.max_s:g}")
    argv += {"xnnpack": ["--use_xnnpack=true"], "gpu": ["--use_gpu=true"], "nnapi": ["--use_nnapi=true"],
             "none": ["--use_xnnpack=false"]}[delegate]  # fmt: skip
    argv.append("--report_peak_memory_footprint=true")
    return (["taskset", cpu_mask] if cpu_mask else []) + argv


def benchmark_app_argv(model: str, threads: int, tier: Tier) -> list[str]:
    """Single-stream latency (sync API, one request), comparable with benchmark_model."""
    seconds = max(1, round(tier.min_s))
    return ["benchmark_app", "-m", model, "-d", "CPU", "-api", "sync", "-hint", "latency", "-nireq", "1",
            "-nthreads", str(threads), "-niter", str(tier.min_runs), "-t", str(seconds), "-infer_precision", "f32"]  # fmt: skip


def litert_benchmark_argv(python: str, model: str, threads: int, tier: Tier) -> list[str]:
    """LiteRT's Python benchmark on its CPU accelerator (XNNPACK): warm-up and timed run counts only."""
    return [python, "-m", LITERT_BENCHMARK_MODULE, f"--model={model}", f"--num_threads={threads}",
            f"--warmup_runs={tier.warmup_runs}", f"--num_runs={tier.min_runs}"]  # fmt: skip


def timer_argv(python: str, script: str, model: str, inputs: str, threads: int, tier: Tier) -> list[str]:
    argv = [python, script, "--model", model, "--input", inputs, "--threads", str(threads),
            "--warmup-runs", str(tier.warmup_runs), "--warmup-s", f"{tier.warmup_s:g}",
            "--min-runs", str(tier.min_runs), "--min-s", f"{tier.min_s:g}"]  # fmt: skip
    if tier.max_s is not None:
        argv += ["--max-s", f"{tier.max_s:g}"]
    return argv
