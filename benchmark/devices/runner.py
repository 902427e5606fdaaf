"""``bench latency --device``: export on the host, push file + tool to a fresh folder on the target,
time it there with the target's own tool, pull the log, parse it, clean up, one record per runtime.

Timing is the device tool's alone (never host round trips). The folder is removed in a ``finally``
(also on Ctrl-C and SIGTERM) unless ``keep``. A record is made only from a parsed measurement. With
``accuracy_images`` (``--data``), the gate's batches are run through the file on the target by the
suite's timer and judged against eager fp32 here, exactly as a local runtime's outputs are.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree

from backbones.errors import UserError
from benchmark.devices import facts as device_facts
from benchmark.devices.abi import check_tool_abi, elf_machine, exec_format_refused
from benchmark.devices.device_record import (
    Exported,
    RecordContext,
    ToolRunOutcome,
    build_record,
    target_block,
)
from benchmark.devices.parsers import ToolOutputError, ToolResult
from benchmark.devices.tools import DeviceTool, ToolRun, choose_tool
from benchmark.devices.transports import NoSpaceLeft, Transport, human_bytes
from benchmark.devices.work_folder import (
    TOOL_LOG,
    clean_work_folder,
    make_work_folder,
    sigterm_as_interrupt,
    tool_command,
    work_folder_name,
)
from benchmark.latency.gate import EagerReference, accuracy_gate
from benchmark.latency.inputs import calibration_batches, load_task_images
from benchmark.latency.runtimes import device_runtimes
from benchmark.latency.runtimes.base import output_spec
from benchmark.latency.runtimes.export import SUFFIXES, export_model, format_unavailable, write_sidecar
from benchmark.latency.timing import Tier
from benchmark.runs.schema import GateResult, LatencyRecord


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
            runtime = device_runtimes().get(name)
            if runtime is None:
                raise UserError(f"--runtime {name}: not timed on a device; choose from {', '.join(device_runtimes())}")
            fmt, int8 = runtime.export_format, runtime.precision == "int8"
            with quiet_warnings():  # the converters print their C++ logs at import
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


@contextmanager
def quiet_warnings() -> Iterator[list[str]]:
    """What the libraries print during a step (Python warnings, and C++ logs on fd 2: absl, TF, oneDNN),
    collected instead of shown: the terminal gets the run's rows or its one error line."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            printed = sink.read().decode(errors="replace").splitlines()
        for text in [f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught] + printed:
            if text.strip() and text[:200] not in said and len(said) < 40:
                said.append(text[:200])


def export_for_device(task: Any, cfg: dict[str, Any], model: Any, images: Any, runtime: str, folder: Path,
                      calibration_images: int) -> Exported:  # fmt: skip
    """The ``bench export`` file and sidecar for ``runtime``; the libraries' warnings while exporting are
    kept in its details (the terminal shows the run's rows, or its one error line)."""
    from tasks.preprocessing import mean_std

    chosen = device_runtimes()[runtime]
    fmt, int8 = chosen.export_format, chosen.precision == "int8"
    calibration = calibration_batches(images, calibration_images, 0)[0] if int8 else []
    out = folder / f"{cfg['backbone']}-{runtime}{SUFFIXES[fmt]}"
    with quiet_warnings() as said:
        details = export_model(model.eval(), images.example, fmt, int8=int8, calibration=calibration, out_path=out)
    mean, std = mean_std(cfg.get("preset") or "torchvision")
    sidecar = write_sidecar(out, example=images.example, fmt=fmt, int8=int8, mean=mean, std=std,
                            extra={"task": task.name, "backbone": cfg["backbone"], "resolution": int(cfg["resolution"])})  # fmt: skip
    files = [out, sidecar] + ([out.with_suffix(".bin")] if fmt == "openvino" else [])
    kept = {k: v for k, v in details.items() if k != "path"}
    return Exported(runtime, fmt, int8, out, files, {**kept, **({"warnings": said} if said else {})})


def device_forward(transport: Transport, tool: DeviceTool, run: ToolRun, host: Path,
                   spec: pytree.TreeSpec) -> Callable[[torch.Tensor], Any]:  # fmt: skip
    """The file on the target as the gate's forward: each batch pushed, run there by the tool, its
    outputs pulled and put back into eager's structure."""

    def forward(x: torch.Tensor) -> Any:
        np.save(host / "gate-in.npy", x.detach().cpu().float().numpy())
        transport.push(host / "gate-in.npy", f"{run.work}/gate-in.npy")
        done = transport.shell(tool.gate_argv(run, f"{run.work}/gate-in.npy", f"{run.work}/gate-out.npz"), timeout=600)
        if done.returncode:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise UserError(f"--device {transport.address}: the accuracy gate's run of {Path(run.model).name} failed "
                            f"(exit {done.returncode}: {said[-1][:160] if said else 'no output'})")  # fmt: skip
        transport.pull(f"{run.work}/gate-out.npz", host / "gate-out.npz")
        with np.load(host / "gate-out.npz") as outputs:
            leaves = [torch.from_numpy(outputs[f"output_{k}"]) for k in range(len(outputs.files))]
        return pytree.tree_unflatten(leaves, spec)

    return forward


def tool_exit_code(stdout: str) -> int | None:
    """The tool's exit status from the ``rc=N`` line the run's shell prints after it (the last one),
    or None when there is none (the shell itself did not get that far)."""
    lines = [line for line in stdout.splitlines() if line.startswith("rc=")]
    value = lines[-1][3:].strip() if lines else ""
    return int(value) if value.lstrip("-").isdigit() else None


def _last_line(log: str, default: str) -> str:
    """The log's last line, its end kept when long (a shell's reason follows the path it names)."""
    line = log.strip().splitlines()[-1] if log.strip() else default
    return line if len(line) <= 160 else "..." + line[-157:]


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

    tools: dict[str, DeviceTool]
    facts: dict[str, Any]
    cpu_mask: str | None


def check_target(transport: Transport, options: DeviceOptions) -> Target:
    """What can be wrong with the target, found before a model is built, exported or pushed: no tool
    for a runtime, a pushed binary built for another CPU than the device's."""
    tools = {name: choose_tool(options.tool, transport.kind, device_runtimes()[name].export_format) for name in options.runtimes}
    facts = device_facts.read_facts(transport)
    for binary in {tool.binary for tool in tools.values() if tool.binary is not None}:
        check_tool_abi(binary, facts, transport.address)
    cpu_mask = options.cpu_mask
    if cpu_mask is None and transport.kind == "adb" and facts["max_freqs_khz"]:
        cpu_mask = device_facts.big_core_mask(dict(zip(facts["cpu_ids"], facts["max_freqs_khz"], strict=True)))
    return Target(tools, facts, cpu_mask)


@dataclass(frozen=True)
class Session:
    """What every runtime's measurement in one ``bench latency --device`` run shares."""

    transport: Transport
    options: DeviceOptions
    target: Target
    host: Path
    gate: Any
    spec: pytree.TreeSpec
    record: RecordContext


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
    """Time each runtime's exported file on the target (``target``: checked already); a measurement per
    runtime. SIGTERM is handled as Ctrl-C: the device folder removed, nothing recorded."""
    with sigterm_as_interrupt():
        target = target or check_target(transport, options)
        images = load_task_images(task, cfg, 1)
        gate = accuracy_gate(task, cfg, images, EagerReference(model.eval()), options.accuracy_images)
        spec = output_spec(model.eval(), images.example)
        context = RecordContext(task.name, cfg, str(target.facts["model"] or transport.address), options.threads,
                                options.tier, images.description, weights)  # fmt: skip
        results = []
        with tempfile.TemporaryDirectory(prefix="bench-device-") as host_dir:
            session = Session(transport, options, target, Path(host_dir), gate, spec, context)
            np.save(session.host / "input.npy", images.example.numpy().astype(np.float32))
            for name in options.runtimes:
                exported = export_for_device(task, cfg, model, images, name, session.host, options.calibration_images)
                measurement = _measure_file(session, exported)
                results.append(measurement)
                if on_measurement is not None:
                    on_measurement(measurement)
        return results


def _measure_file(session: Session, exported: Exported) -> DeviceMeasurement:
    """One runtime's file in a fresh work folder, removed on every way out (Ctrl-C, SIGTERM and a
    Ctrl-C during its creation included: its name is chosen here, so it is known before it exists)."""
    transport, options = session.transport, session.options
    tool = session.target.tools[exported.runtime]
    work = work_folder_name(options.root or transport.default_root)
    interrupted = False
    try:
        make_work_folder(transport, work)
        push_all(transport, _pushes(session, exported, tool, work), work)
        if (binary := tool.executable(work)) is not None:
            transport.shell(["chmod", "+x", binary], timeout=60)
        outcome = _run_tool(session, tool, _tool_run(session, exported, work))
        result = _parse(session, exported, tool, outcome)
        for _ in range(3):  # the tier's seconds, for a tool that counts runs only
            if not (runs := tool.rerun_runs(result, options.tier)):
                break
            tool = replace(tool, runs=runs)
            outcome = _run_tool(session, tool, _tool_run(session, exported, work))
            result = _parse(session, exported, tool, outcome)
        accuracy = _judge(session, exported, tool, work)
        version = result.runtime_version or result.tool_version or _asked_version(transport, tool, options)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        cleaned = clean_work_folder(transport, work, keep=options.keep, stop_tool=interrupted)
    if interrupted:
        raise KeyboardInterrupt(f"--device {transport.address}: stopped, {cleaned}, no record of {exported.runtime} written")
    facts = session.target.facts
    block = target_block(transport, facts, tool, outcome, result, exported, options.delegate, session.target.cpu_mask,
                         options.cooldown_c)  # fmt: skip
    record = build_record(session.record, exported, tool, result, block, version, accuracy)
    return DeviceMeasurement(record, outcome.log)


def _tool_run(session: Session, exported: Exported, work: str) -> ToolRun:
    options = session.options
    return ToolRun(work=work, model=f"{work}/{exported.path.name}", inputs=f"{work}/input.npy", threads=options.threads,
                   tier=options.tier, python=options.python, cpu_mask=session.target.cpu_mask,
                   delegate=options.delegate)  # fmt: skip


def _pushes(session: Session, exported: Exported, tool: DeviceTool, work: str) -> list[tuple[Path, str]]:
    """(host file, device path) of everything one runtime's run needs in the work folder."""
    files = [(file, f"{work}/{file.name}") for file in exported.files]
    return files + [(session.host / "input.npy", f"{work}/input.npy")] + tool.pushes(work)


def _run_tool(session: Session, tool: DeviceTool, run: ToolRun) -> ToolRunOutcome:
    """Cool down, run the tool with its output to a log on the device, pull the log."""
    transport, options = session.transport, session.options
    temp_before, waited = device_facts.cool_down(transport, options.cooldown_c, options.cooldown_max_s)
    argv = tool.argv(run)
    done = transport.shell(["sh", "-c", tool_command(argv, run.work)],
                           timeout=options.tier.max_s * 3 + 600 if options.tier.max_s else None)  # fmt: skip
    transport.pull(f"{run.work}/{TOOL_LOG}", session.host / "tool.log")
    log = (session.host / "tool.log").read_text(errors="replace")
    return ToolRunOutcome(argv, done.returncode, tool_exit_code(done.stdout), log, temp_before, waited,
                          device_facts.temperature(transport))  # fmt: skip


def _parse(session: Session, exported: Exported, tool: DeviceTool, outcome: ToolRunOutcome) -> ToolResult:
    """The tool's measurement, or one line: the device cannot execute it, it is missing, or its own error."""
    address, facts, rc, log = session.transport.address, session.target.facts, outcome.rc, outcome.log
    label = tool.label(outcome.argv)
    if rc and exec_format_refused(log):
        elf = elf_machine(tool.binary) if tool.binary else None
        raise UserError(f"--device {address}: the device ({facts['abi'] or 'CPU unknown'}) cannot execute "
                        f"{label}{f', an {elf} ELF file' if elf else ''}: {_last_line(log, 'exit 126')}; use a "
                        f"{label} built for {facts['abi'] or 'its CPU'}")  # fmt: skip
    if rc == 126:
        raise UserError(f"--device {address}: the device cannot execute {label} ({_last_line(log, 'exit 126')}); "
                        "is the folder mounted noexec? choose another with --device-root")  # fmt: skip
    if rc == 127 or "not found" in log[-300:] and rc:
        raise UserError(f"--device {address}: {label} not found on the device ({_last_line(log, 'exit 127')})")
    try:
        result = tool.parse(log)
    except ToolOutputError as error:
        raise UserError(f"--device {address} {exported.runtime}: {error} (exit {rc})") from None
    if rc:
        raise UserError(f"--device {address} {exported.runtime}: {tool.name} exited {rc} after printing a measurement")
    if result.details.get("shape_groups"):
        raise UserError(f"--device {address} {exported.runtime}: {result.tool} timed {len(result.details['shape_groups'])} "
                        "data shape groups; the suite times one shape per record")  # fmt: skip
    return result


def _judge(session: Session, exported: Exported, tool: DeviceTool, work: str) -> GateResult | None:
    """The accuracy gate on the device's own outputs, where the tool returns them."""
    gate = session.gate
    if gate is None:
        return None
    if gate.note:
        return GateResult(note=gate.note)
    if not tool.returns_tensors:
        return GateResult(note=f"no gate: {tool.name} returns no output tensors (--device-tool script runs the gate "
                               "on the device)")  # fmt: skip
    forward = device_forward(session.transport, tool, _tool_run(session, exported, work), session.host, session.spec)
    return gate.judge(forward)


def _asked_version(transport: Transport, tool: DeviceTool, options: DeviceOptions) -> str | None:
    """The runtime's version from the tool's own query, for a tool whose log does not print it."""
    argv = tool.version_query(options.python)
    if argv is None:
        return None
    asked = transport.shell(argv, timeout=120)
    lines = asked.stdout.strip().splitlines() if asked.returncode == 0 else []
    return lines[-1].strip() if lines else None
