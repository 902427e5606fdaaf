"""``bench latency --device``: export on the host, push file + tool to a fresh folder on the target,
time it there with the target's own tool, pull the log, parse it, clean up, one record per runtime.

Timing is the device tool's alone (never host round trips). The folder is removed in a ``finally``
(also on Ctrl-C) unless ``keep``. A record is made only from a parsed measurement. With
``accuracy_images`` (``--data``), the gate's batches are run through the file on the target by the
suite's timer and judged against eager fp32 here, exactly as a local runtime's outputs are.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree

from backbones.errors import UserError
from benchmark.devices import facts as device_facts
from benchmark.devices.abi import check_tool_abi, elf_machine, exec_format_refused
from benchmark.devices.parsers import PARSERS, ToolOutputError, ToolResult
from benchmark.devices.tools import (
    TIMER_SCRIPT,
    TOOL_NOTES,
    ToolChoice,
    benchmark_app_argv,
    benchmark_model_argv,
    choose_tool,
    litert_benchmark_argv,
    timer_argv,
)
from benchmark.devices.transports import NoSpaceLeft, Transport, human_bytes
from benchmark.devices.work_folder import TOOL_LOG, clean_work_folder, make_work_folder, tool_command
from benchmark.latency.gate import EagerReference, GateResult, accuracy_gate
from benchmark.latency.inputs import calibration_batches, load_task_images
from benchmark.latency.record import LatencyRecord
from benchmark.latency.runtimes.base import output_spec
from benchmark.latency.runtimes.export import SUFFIXES, export_model, format_unavailable, write_sidecar
from benchmark.latency.timing import LatencyStats, Tier, summarize
from benchmark.runs.records import environment

# The runtimes a target can time: the export format and precision of the file it gets.
DEVICE_RUNTIMES: dict[str, tuple[str, bool]] = {
    "litert": ("tflite", False),
    "litert-int8": ("tflite", True),
    "onnxruntime": ("onnx", False),
    "onnxruntime-int8": ("onnx", True),
    "openvino": ("openvino", False),
    "openvino-int8": ("openvino", True),
}
LAYOUTS = {"tflite": "NHWC", "onnx": "NCHW", "openvino": "NCHW"}


@dataclass(frozen=True)
class DeviceOptions:
    runtimes: tuple[str, ...]
    threads: int
    tier: Tier
    tool: str | None = None
    python: str = "python3"
    cpu_mask: str | None = None
    delegate: str = "xnnpack"
    keep: bool = False
    cooldown_c: float | None = None
    cooldown_max_s: float = 120.0
    calibration_images: int = 32
    root: str | None = None
    accuracy_images: int = 0

    def __post_init__(self) -> None:
        for name in self.runtimes:
            if name not in DEVICE_RUNTIMES:
                raise UserError(f"--runtime {name}: not timed on a device; choose from {', '.join(DEVICE_RUNTIMES)}")
            fmt, int8 = DEVICE_RUNTIMES[name]
            reason = format_unavailable(fmt, int8)
            if reason:
                raise UserError(f"--runtime {name}: {reason}")
        if self.threads < 1:
            raise UserError(f"--threads must be >= 1, got {self.threads}")
        if self.cpu_mask is not None and not all(c in "0123456789abcdefABCDEF" for c in self.cpu_mask.removeprefix("0x")):
            raise UserError(f"--cpu-mask: {self.cpu_mask!r} is not a hex mask (e.g. f0)")
        if self.delegate not in ("xnnpack", "gpu", "nnapi", "none"):
            raise UserError(f"--delegate: {self.delegate!r}; choose from xnnpack, gpu, nnapi, none")


@dataclass(frozen=True)
class DeviceMeasurement:
    record: LatencyRecord
    log: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def export_for_device(task: Any, cfg: dict[str, Any], model: Any, images: Any, runtime: str, folder: Path,
                      calibration_images: int) -> tuple[Path, list[Path], dict[str, Any]]:  # fmt: skip
    """The ``bench export`` file and sidecar for ``runtime``: (model file, files to push, export details)."""
    from tasks.preprocessing import mean_std

    fmt, int8 = DEVICE_RUNTIMES[runtime]
    calibration = calibration_batches(images, calibration_images, 0)[0] if int8 else []
    out = folder / f"{cfg['backbone']}-{runtime}{SUFFIXES[fmt]}"
    details = export_model(model.eval(), images.example, fmt, int8=int8, calibration=calibration, out_path=out)
    mean, std = mean_std(cfg.get("preset") or "torchvision")
    sidecar = write_sidecar(out, example=images.example, fmt=fmt, int8=int8, mean=mean, std=std,
                            extra={"task": task.name, "backbone": cfg["backbone"], "resolution": int(cfg["resolution"])})  # fmt: skip
    files = [out, sidecar] + ([out.with_suffix(".bin")] if fmt == "openvino" else [])
    return out, files, {k: v for k, v in details.items() if k != "path"}


def tool_argv(choice: ToolChoice, work: str, model_name: str, fmt: str, options: DeviceOptions,
              cpu_mask: str | None) -> list[str]:  # fmt: skip
    model = f"{work}/{model_name}"
    if choice.name == "bench-device-timer":
        return timer_argv(options.python, f"{work}/{TIMER_SCRIPT.name}", model, f"{work}/input.npy", options.threads,
                          options.tier)  # fmt: skip
    if choice.name == "benchmark_app":
        return benchmark_app_argv(model, options.threads, options.tier)
    if choice.name == "litert-benchmark":
        return litert_benchmark_argv(options.python, model, options.threads, options.tier)
    tool = f"{work}/benchmark_model" if choice.binary else str(choice.command)
    return benchmark_model_argv(tool, model, options.threads, options.tier, cpu_mask, options.delegate)


def device_forward(transport: Transport, work: str, model_name: str, host: Path, options: DeviceOptions,
                   spec: pytree.TreeSpec) -> Callable[[torch.Tensor], Any]:  # fmt: skip
    """The file on the target as the gate's forward: each batch pushed, run there by the suite's
    timer, its outputs pulled and put back into eager's structure."""

    def forward(x: torch.Tensor) -> Any:
        np.save(host / "gate-in.npy", x.detach().cpu().float().numpy())
        transport.push(host / "gate-in.npy", f"{work}/gate-in.npy")
        argv = [options.python, f"{work}/{TIMER_SCRIPT.name}", "--model", f"{work}/{model_name}", "--threads",
                str(options.threads), "--inputs", f"{work}/gate-in.npy", "--outputs", f"{work}/gate-out.npz"]  # fmt: skip
        run = transport.shell(argv, timeout=600)
        if run.returncode:
            said = (run.stderr or run.stdout).strip().splitlines()
            raise UserError(f"--device {transport.address}: the accuracy gate's run of {model_name} failed "
                            f"(exit {run.returncode}: {said[-1][:160] if said else 'no output'})")  # fmt: skip
        transport.pull(f"{work}/gate-out.npz", host / "gate-out.npz")
        with np.load(host / "gate-out.npz") as outputs:
            leaves = [torch.from_numpy(outputs[f"output_{k}"]) for k in range(len(outputs.files))]
        return pytree.tree_unflatten(leaves, spec)

    return forward


def delegate_fallback(result: ToolResult, wanted: str) -> str | None:
    """Why the CPU kernels ran instead of ``--delegate``, only when the log says so (the delegate
    took none of the graph); a log that says nothing about it is not a fallback."""
    if wanted == "none":
        return None
    said = [d for d in result.delegations if wanted in d.name.lower()]
    if said and all(d.coverage == "none" for d in said):
        return f"--delegate {wanted}: the tool says the delegate took none of the graph ({said[-1].line[:160]}); the CPU kernels ran"
    return None


def tool_exit_code(stdout: str) -> int | None:
    """The tool's exit status from the ``rc=N`` line the run's shell prints after it (the last one),
    or None when there is none (the shell itself did not get that far)."""
    lines = [line for line in stdout.splitlines() if line.startswith("rc=")]
    value = lines[-1][3:].strip() if lines else ""
    return int(value) if value.lstrip("-").isdigit() else None


def _timed(shell_code: int, rc: int | None, log: str) -> bool:
    """The tool exited 0 with a log: the gate runs (a failed timing is reported as such, below)."""
    return shell_code == 0 and rc == 0 and bool(log.strip())


def _module_version(transport: Transport, choice: ToolChoice, options: DeviceOptions) -> str | None:
    """``ai_edge_litert 2.3.0`` for litert-benchmark, which prints no version of its own (asked of --device-python)."""
    if choice.name != "litert-benchmark":
        return None
    asked = transport.shell([options.python, "-c", "import ai_edge_litert; print(ai_edge_litert.__version__)"], timeout=120)
    version = asked.stdout.strip().splitlines()[-1:] if asked.returncode == 0 else []
    return f"ai_edge_litert {version[0]}" if version else None


def _last_line(log: str, default: str) -> str:
    """The log's last line, its end kept when long (a shell's reason follows the path it names)."""
    line = log.strip().splitlines()[-1] if log.strip() else default
    return line if len(line) <= 160 else "..." + line[-157:]


def _pushes(files: list[Path], host: Path, choice: ToolChoice, work: str) -> list[tuple[Path, str]]:
    """(host file, device path) of everything one runtime's run needs in the work folder."""
    pushes = [(file, f"{work}/{file.name}") for file in files] + [(host / "input.npy", f"{work}/input.npy")]
    if choice.name == "bench-device-timer":
        pushes.append((TIMER_SCRIPT, f"{work}/{TIMER_SCRIPT.name}"))
    elif choice.binary is not None:
        pushes.append((choice.binary, f"{work}/benchmark_model"))
    return pushes


def push_all(transport: Transport, pushes: list[tuple[Path, str]], work: str) -> None:
    """Push each file; a full device is one line saying how much the whole run needs there."""
    try:
        for local, remote in pushes:
            transport.push(local, remote)
    except NoSpaceLeft as error:
        total = sum(local.stat().st_size for local, _ in pushes)
        raise UserError(f"{error}; the run needs {human_bytes(total)} in {work} in all") from None


@dataclass(frozen=True)
class Target:
    """The checked target: each runtime's tool, what the device is, and the cores its tool is pinned to."""

    choices: dict[str, ToolChoice]
    facts: dict[str, Any]
    cpu_mask: str | None


def check_target(transport: Transport, options: DeviceOptions) -> Target:
    """What can be wrong with the target, found before a model is built, exported or pushed: no tool
    for a runtime, a pushed binary built for another CPU than the device's."""
    choices = {name: choose_tool(options.tool, transport.kind, DEVICE_RUNTIMES[name][0]) for name in options.runtimes}
    facts = device_facts.read_facts(transport)
    for binary in {choice.binary for choice in choices.values() if choice.binary is not None}:
        check_tool_abi(binary, facts, transport.address)
    cpu_mask = options.cpu_mask
    if cpu_mask is None and transport.kind == "adb" and facts["max_freqs_khz"]:
        cpu_mask = device_facts.big_core_mask(dict(zip(facts["cpu_ids"], facts["max_freqs_khz"], strict=True)))
    return Target(choices, facts, cpu_mask)


def measure_on_device(
    transport: Transport,
    task: Any,
    cfg: dict[str, Any],
    model: Any,
    options: DeviceOptions,
    *,
    weights: dict[str, Any] | None = None,
    on_measurement: Callable[[DeviceMeasurement], None] | None = None,
    target: Target | None = None,
) -> list[DeviceMeasurement]:
    """Time each runtime's exported file on the target (``target``: checked already); a measurement per runtime."""
    target = target or check_target(transport, options)
    choices, facts, cpu_mask = target.choices, target.facts, target.cpu_mask
    images = load_task_images(task, cfg, 1)
    gate = accuracy_gate(task, cfg, images, EagerReference(model.eval()), options.accuracy_images)
    spec = output_spec(model.eval(), images.example)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-device-") as host_dir:
        host = Path(host_dir)
        np.save(host / "input.npy", images.example.numpy().astype(np.float32))
        for name in options.runtimes:
            fmt = DEVICE_RUNTIMES[name][0]
            path, files, export_details = export_for_device(task, cfg, model, images, name, host,
                                                            options.calibration_images)  # fmt: skip
            measurement = _measure_file(transport, name, fmt, path, files, host, choices[name], options, cpu_mask,
                                        facts, task, cfg, export_details, weights, gate, spec, images.description)  # fmt: skip
            results.append(measurement)
            if on_measurement is not None:
                on_measurement(measurement)
    return results


def _measure_file(transport, name, fmt, path, files, host, choice, options, cpu_mask, facts, task, cfg,
                  export_details, weights, gate, spec, source) -> DeviceMeasurement:  # fmt: skip
    work = make_work_folder(transport, options.root or transport.default_root)
    interrupted = False
    try:
        push_all(transport, _pushes(files, host, choice, work), work)
        if choice.binary is not None:
            transport.shell(["chmod", "+x", f"{work}/benchmark_model"], timeout=60)
        temp_before, waited = device_facts.cool_down(transport, options.cooldown_c, options.cooldown_max_s)
        argv = tool_argv(choice, work, path.name, fmt, options, cpu_mask)
        run = transport.shell(["sh", "-c", tool_command(argv, work)],
                              timeout=options.tier.max_s * 3 + 600 if options.tier.max_s else None)  # fmt: skip
        rc = tool_exit_code(run.stdout)
        transport.pull(f"{work}/{TOOL_LOG}", host / "tool.log")
        log = (host / "tool.log").read_text(errors="replace")
        temp_after = device_facts.temperature(transport)
        accuracy = None
        if gate is not None and gate.note:
            accuracy = GateResult(note=gate.note)
        elif gate is not None and choice.name != "bench-device-timer":
            accuracy = GateResult(note=f"no gate: {choice.name} returns no output tensors (--device-tool script runs "
                                       "the gate on the device)")  # fmt: skip
        elif gate is not None and _timed(run.returncode, rc, log):
            accuracy = gate.judge(device_forward(transport, work, path.name, host, options, spec))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        cleaned = clean_work_folder(transport, work, keep=options.keep, stop_tool=interrupted)
    if interrupted:
        raise KeyboardInterrupt(f"--device {transport.address}: stopped, {cleaned}, no record of {name} written")
    tool_name = argv[0] if choice.name != "benchmark_model" else "benchmark_model"
    if rc and exec_format_refused(log):
        elf = elf_machine(choice.binary) if choice.binary else None
        raise UserError(f"--device {transport.address}: the device ({facts['abi'] or 'CPU unknown'}) cannot execute "
                        f"{tool_name}{f', an {elf} ELF file' if elf else ''}: {_last_line(log, 'exit 126')}; use a "
                        f"{tool_name} built for {facts['abi'] or 'its CPU'}")  # fmt: skip
    if rc == 126:
        raise UserError(f"--device {transport.address}: the device cannot execute {tool_name} ({_last_line(log, 'exit 126')}); "
                        "is the folder mounted noexec? choose another with --device-root")  # fmt: skip
    if rc == 127 or "not found" in log[-300:] and rc:
        raise UserError(f"--device {transport.address}: {tool_name} not found on the device ({_last_line(log, 'exit 127')})")
    try:
        result = PARSERS[choice.name](log)
    except ToolOutputError as error:
        raise UserError(f"--device {transport.address} {name}: {error} (exit {rc})") from None
    if rc:
        raise UserError(f"--device {transport.address} {name}: {choice.name} exited {rc} after printing a measurement")
    stats, notes = stats_from(result)
    notes.update(TOOL_NOTES.get(choice.name, {}))
    runtime_version = result.runtime_version or result.tool_version or _module_version(transport, choice, options)
    delegate, delegated = result.delegate, result.delegated_nodes
    fallback = delegate_fallback(result, options.delegate) if choice.name == "benchmark_model" else None
    if result.details.get("shape_groups"):
        raise UserError(f"--device {transport.address} {name}: {result.tool} timed {len(result.details['shape_groups'])} "
                        "data shape groups; the suite times one shape per record")  # fmt: skip
    if choice.name == "bench-device-timer":
        delegated = result.details.get("delegate_nodes")
        delegate = "XNNPACK (LiteRT default)" if fmt == "tflite" else None
    target = {
        "transport": transport.kind,
        "address": transport.address,
        **{k: facts[k] for k in ("model", "manufacturer", "soc", "abi", "os", "kernel", "cpus", "max_freqs_khz",
                                 "governors")},
        "temp_before_c": temp_before,
        "temp_after_c": temp_after,
        "cooldown_waited_s": waited,
        "cooldown_c": options.cooldown_c,
        "tool": {"name": result.tool, "version": result.tool_version, "argv": argv},
        "runtime_version": result.runtime_version,
        "delegate": delegate,
        "delegated_nodes": delegated,
        "total_nodes": result.total_nodes,
        "delegate_coverage": result.delegate_coverage,
        "delegate_fallback": fallback,
        "cpu_mask": cpu_mask,
        "file": {"name": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size},
    }  # fmt: skip
    int8 = DEVICE_RUNTIMES[name][1]
    record = LatencyRecord(
        task=task.name, backbone=cfg["backbone"], width=cfg.get("width"), resolution=int(cfg["resolution"]),
        num_classes=int(cfg["num_classes"]), runtime=name,
        runtime_version=runtime_version or "unknown",
        device=str(facts["model"] or transport.address), threads=options.threads, batch_size=1,
        precision="int8" if int8 else "fp32", layout=LAYOUTS[fmt], tier=options.tier.name,
        methodology=dict(asdict(options.tier), timed_by=f"{result.tool} on the device", notes=notes),
        input=f"{source}, saved as .npy and pushed",
        init_ms=(result.init_us or 0.0) / 1000.0, stats=stats, postprocess=None, accuracy=accuracy,
        peak_memory_mb=result.peak_memory_mb,
        memory={"method": f"{result.tool} on the device" if result.memory or result.peak_memory_mb else "not measured",
                **result.memory},
        details={"export": export_details, **{k: v for k, v in result.details.items() if k != "delegate_nodes"}},
        environment=environment("cpu"), weights=weights, target=target,
    )  # fmt: skip
    return DeviceMeasurement(record, log)
