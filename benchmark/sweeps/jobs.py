"""Sweeps: run ``bench run`` / ``bench latency`` over a matrix and collect their records.

Each job is a separate ``python -m benchmark.cli ...`` process writing into a scratch folder;
its records are validated and copied into the records store under content-derived names
(``benchmark.store.add_record``, atomic). A failing job is reported and the sweep goes on.
The job runner is a parameter, so tests drive the whole sweep with a fake one.

Counting (``recount``) builds each reported network the suite has (``baselines.suite_models``)
in-process through ``bench profile --json`` and caches the counts as ``profile`` records.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.baselines import BASELINES, Baselines, SuiteModel
from backbones.errors import UserError
from benchmark.records import SCHEMA_VERSION
from benchmark.store import add_record, import_record_file, load_record

TASKS = ("classification", "detection", "segmentation")
# issue 6's runtimes: every CPU one, and eager CUDA when a GPU is present.
CPU_RUNTIMES = ("eager", "eager-cl", "compile", "onnxruntime", "onnxruntime-int8")
GPU_RUNTIMES = ("cuda",)


@dataclass(frozen=True)
class Tier:
    """A named matrix: tasks x backbones x widths x resolutions x runtimes, plus fixed flags."""

    name: str
    tasks: tuple[str, ...]
    backbones: tuple[str, ...]  # empty: every registered backbone
    # Widths for backbones that take ``--width`` (others run once at their only width).
    widths: dict[str, tuple[float, ...]]
    # Resolutions per task; None = the task's recipe default (the embedded data's size).
    resolutions: dict[str, tuple[int | None, ...]]
    runtimes: tuple[str, ...]
    run_args: tuple[str, ...]
    latency_args: tuple[str, ...]
    needs_data: bool
    timeout_s: float | None
    description: str


QUICK = Tier(
    name="quick",
    tasks=TASKS,
    backbones=("mnv1", "mnv2", "mobilenet_v3_large", "mobilenet_v3_small"),
    widths={},
    resolutions={task: (None,) for task in TASKS},
    runtimes=CPU_RUNTIMES,
    # The embedded data's recipes as shipped (each sized to train in minutes on 2 CPU cores and
    # learn far above chance; a 2-epoch cap left detection at ~0 mAP). Faster: --run-args "--max-epochs 2".
    run_args=("--logger", "none", "--num-workers", "2"),
    latency_args=("--tier", "quick", "--threads", "2"),
    needs_data=False,
    timeout_s=3600,
    description="every task x mnv1, mnv2, mobilenet_v3_large/small at width 1.0 on the embedded synthetic "
    "data (the synthetic recipes' schedules), then every CPU runtime (quick latency tier); CI on 2 CPU cores",
)

FULL = Tier(
    name="full",
    tasks=TASKS,
    backbones=(),
    # The papers' grids: TF-slim MobileNetV2 widths, V1 paper Table 6 widths.
    widths={"mnv2": (1.4, 1.3, 1.0, 0.75, 0.5, 0.35), "mnv1": (1.0, 0.75, 0.5, 0.25)},
    # Classification: the slim table's and V1 Table 7's resolutions; SSDLite 320; DeepLab 513 crops.
    resolutions={"classification": (224, 192, 160, 128, 96), "detection": (320,), "segmentation": (513,)},
    runtimes=CPU_RUNTIMES + GPU_RUNTIMES,
    run_args=(),
    latency_args=("--tier", "normal"),
    needs_data=True,
    timeout_s=None,
    description="the papers' matrix on real data (--data TASK=ROOT for each task), full recipes, every "
    "runtime the machine has (cuda on a GPU), normal latency tier (>= 1024 runs and 60 s)",
)
TIERS = {tier.name: tier for tier in (QUICK, FULL)}


@dataclass(frozen=True)
class Cell:
    """One model configuration of the matrix."""

    task: str
    backbone: str
    width: float | None
    resolution: int | None

    @property
    def label(self) -> str:
        width = f" w{self.width}" if self.width is not None else ""
        resolution = f" @{self.resolution}" if self.resolution is not None else ""
        return f"{self.task} {self.backbone}{width}{resolution}"

    @property
    def folder_name(self) -> str:
        """The cell's job folder: named by the cell alone, so a later sweep over the same
        ``--workdir`` finds it again."""
        return self.label.replace(" ", "_").replace("@", "r")

    def model_flags(self) -> list[str]:
        flags = ["--task", self.task, "--backbone", self.backbone]
        if self.width is not None:
            flags += ["--width", str(self.width)]
        if self.resolution is not None:
            flags += ["--resolution", str(self.resolution)]
        return flags


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    runtimes: tuple[str, ...]
    stages: tuple[str, ...]
    run_args: tuple[str, ...]
    latency_args: tuple[str, ...]
    data: dict[str, str]
    timeout_s: float | None
    skipped: tuple[str, ...] = ()  # why parts of the tier were left out (task not registered, ...)


@dataclass
class JobOutcome:
    returncode: int
    output_tail: str


@dataclass
class JobReport:
    name: str
    status: str  # ok, failed
    seconds: float
    records: list[Path] = field(default_factory=list)
    message: str = ""


# argv, timeout -> outcome
Runner = Callable[[list[str], float | None], JobOutcome]


def subprocess_runner(argv: list[str], timeout_s: float | None) -> JobOutcome:
    """Run one ``bench`` job as a child process; its output is kept for the failure message."""
    env = {k: v for k, v in os.environ.items() if k != "BENCH_RUN_OUTPUT"}
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("WANDB_SILENT", "true")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as error:
        tail = (error.stderr or b"")[-2000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        return JobOutcome(124, f"timed out after {timeout_s:.0f} s\n{tail}")
    return JobOutcome(done.returncode, (done.stdout[-1000:] + "\n" + done.stderr[-3000:]).strip())


def bench_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmark.cli", *args]


def _parse_list(text: str | None, convert: Callable[[str], Any], flag: str) -> tuple | None:
    if text is None:
        return None
    try:
        values = tuple(convert(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        raise UserError(f"{flag}: cannot read {text!r} (expected a comma-separated list)") from None
    if not values:
        raise UserError(f"{flag}: empty list")
    return values


def parse_data(pairs: Sequence[str]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        task, sep, root = pair.partition("=")
        if not sep or task not in TASKS or not root:
            raise UserError(f"--data {pair!r}: expected TASK=ROOT with TASK one of {', '.join(TASKS)}")
        data[task] = root
    return data


def make_plan(
    tier: Tier,
    *,
    tasks: str | None = None,
    backbones: str | None = None,
    widths: str | None = None,
    resolutions: str | None = None,
    runtimes: str | None = None,
    stages: str = "profile,run,latency",
    data: Sequence[str] = (),
    run_args: str = "",
    latency_args: str = "",
    timeout_s: float | None = None,
    registered_tasks: Iterable[str] | None = None,
    gpu: bool | None = None,
) -> Plan:
    """Expand a tier (and the user's narrowing flags) into the cells and runtimes to run."""
    from backbones import UnknownBackboneError, get_entry, list_backbones

    if registered_tasks is None:
        from tasks import list_tasks

        registered_tasks = list_tasks()
    registered = set(registered_tasks)
    stage_list = _parse_list(stages, str, "--stages")
    unknown_stages = sorted(set(stage_list) - {"profile", "run", "latency"})
    if unknown_stages:
        raise UserError(
            f"--stages: unknown stage(s) {', '.join(unknown_stages)}; choose from profile, run, latency"
        )
    task_list = _parse_list(tasks, str, "--tasks") or tier.tasks
    for task in task_list:
        if task not in TASKS:
            raise UserError(f"--tasks: unknown task {task!r}; choose from {', '.join(TASKS)}")
    skipped = [f"task {t}: not registered in this checkout" for t in task_list if t not in registered]
    task_list = tuple(t for t in task_list if t in registered)
    backbone_list = _parse_list(backbones, str, "--backbones") or tier.backbones or tuple(list_backbones())
    try:
        backbone_list = tuple(get_entry(name).name for name in backbone_list)
    except UnknownBackboneError as error:
        raise UserError(f"--backbones: {error}") from None
    width_override = _parse_list(widths, float, "--widths")
    resolution_override = _parse_list(resolutions, int, "--resolutions")
    if width_override and any(w <= 0 for w in width_override):
        raise UserError(f"--widths: widths must be > 0, got {widths}")
    if resolution_override and any(r < 32 for r in resolution_override):
        raise UserError(f"--resolutions: resolutions must be >= 32 pixels, got {resolutions}")
    data_map = parse_data(data)
    if tier.needs_data and "run" in stage_list:
        missing = [t for t in task_list if t not in data_map]
        if missing:
            flags = " ".join(f"--data {t}=ROOT" for t in missing)
            raise UserError(f"--tier {tier.name} trains on real data: give {flags} (or narrow --tasks)")
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    runtime_list = _parse_list(runtimes, str, "--runtimes") or tuple(
        r for r in tier.runtimes if gpu or r not in GPU_RUNTIMES
    )
    cells = []
    for task, backbone in itertools.product(task_list, backbone_list):
        takes_width = "width" in get_entry(backbone).options
        width_values = (width_override or tier.widths.get(backbone, (1.0,))) if takes_width else (None,)
        for width, resolution in itertools.product(
            width_values, resolution_override or tier.resolutions[task]
        ):
            cells.append(Cell(task, backbone, width, resolution))
    return Plan(
        cells=tuple(cells),
        runtimes=runtime_list,
        stages=stage_list,
        run_args=tuple(tier.run_args) + tuple(shlex.split(run_args)),
        latency_args=tuple(tier.latency_args) + tuple(shlex.split(latency_args)),
        data=data_map,
        timeout_s=timeout_s if timeout_s is not None else tier.timeout_s,
        skipped=tuple(skipped),
    )


def run_command(cell: Cell, plan: Plan, output: Path) -> list[str]:
    data = ["--data", plan.data[cell.task]] if cell.task in plan.data else []
    return bench_command("run", *cell.model_flags(), *data, *plan.run_args, "--output", str(output))


def latency_command(cell: Cell, runtime: str, plan: Plan, output: Path, checkpoint: str | None) -> list[str]:
    """Time ``cell`` with one runtime; a trained run's checkpoint fixes the model (and the gate's weights)."""
    model = ["--task", cell.task, "--checkpoint", checkpoint] if checkpoint else cell.model_flags()
    data = ["--data", plan.data[cell.task]] if cell.task in plan.data else []
    return bench_command(
        "latency", *model, *data, "--runtime", runtime, *plan.latency_args, "--output", str(output)
    )


def trained_checkpoint(output: Path) -> Path | None:
    for name in ("best.ckpt", "last.ckpt"):
        if (output / "checkpoints" / name).is_file():
            return output / "checkpoints" / name
    return None


def earlier_checkpoint(folder: Path, plan: Plan) -> str | None:
    """A latency-only sweep over a kept --workdir times the model an earlier sweep trained in ``folder``."""
    if "run" in plan.stages:
        return None
    saved = trained_checkpoint(folder / "run")
    return str(saved) if saved is not None else None


def collect_latency_records(output: Path, records_dir: Path) -> list[tuple[str, Path]]:
    """Copy every latency record ``bench latency`` left under ``output`` into the store.

    Returns (runtime, stored path) pairs; other JSON files there (not records) are ignored.
    """
    written = []
    for path in sorted(output.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("kind") == "latency":
            record = load_record(path)  # a broken latency record is an error, not something to skip
            written.append((record["runtime"], add_record(record, records_dir, source=path)[0]))
    return written


def _message(outcome: JobOutcome) -> str:
    lines = [line for line in outcome.output_tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else f"exit code {outcome.returncode}"


def run_sweep(
    plan: Plan,
    records_dir: Path,
    workdir: Path,
    runner: Runner = subprocess_runner,
    log: Callable[[str], None] = print,
    baselines: Baselines = BASELINES,
) -> list[JobReport]:
    """Run the plan's stages; every record lands in ``records_dir``. Returns one report per job.

    Per cell: ``bench run`` (its checkpoint then fixes the model that is timed), then one
    ``bench latency`` call with every runtime, which shares the process start, the data and the
    eager fp32 reference of the accuracy gate. Runtimes that left no record are retried one by
    one, so a runtime that crashes cannot take the others down with it.
    """
    reports: list[JobReport] = []

    def finish(report: JobReport) -> None:
        reports.append(report)
        written = f" -> {', '.join(p.name for p in report.records)}" if report.records else ""
        detail = f": {report.message}" if report.message else ""
        log(f"[{len(reports)}] {report.name}: {report.status} ({report.seconds:.0f} s){written}{detail}")

    for reason in plan.skipped:
        log(f"skipped {reason}")
    if "profile" in plan.stages:
        tasks = {cell.task for cell in plan.cells} or None
        for line in recount(records_dir, baselines, tasks=tasks):
            log(line)
    log(
        f"{len(plan.cells)} model configuration(s), runtimes {', '.join(plan.runtimes)}, stages {', '.join(plan.stages)}"
    )
    for cell in plan.cells:
        folder = workdir / cell.folder_name
        checkpoint = earlier_checkpoint(folder, plan)
        if "run" in plan.stages:
            report = train_cell(cell, plan, folder / "run", records_dir, runner)
            finish(report)
            if report.status != "ok":
                if "latency" in plan.stages:
                    # Timing an untrained model in place of a failed run would hide the failure.
                    finish(JobReport(f"latency {cell.label}", "failed", 0.0, message="its run failed"))
                continue
            saved = trained_checkpoint(folder / "run")
            checkpoint = str(saved) if saved is not None else None
        if "latency" in plan.stages:
            missing = time_cell(
                cell, plan.runtimes, plan, folder / "latency", checkpoint, records_dir, runner, finish
            )
            if len(plan.runtimes) > 1:
                for runtime in missing:
                    time_cell(cell, (runtime,), plan, folder / f"latency-{runtime}", checkpoint, records_dir, runner,
                              finish)  # fmt: skip
    return reports


def train_cell(cell: Cell, plan: Plan, output: Path, records_dir: Path, runner: Runner) -> JobReport:
    started = time.perf_counter()
    outcome = runner(run_command(cell, plan, output), plan.timeout_s)
    report = JobReport(f"run {cell.label}", "failed", time.perf_counter() - started)
    result = output / "result.json"
    if outcome.returncode != 0 or not result.is_file():
        report.message = _message(outcome) if outcome.returncode else "no result.json written"
        return report
    try:
        report.records = [import_record_file(result, records_dir)[0]]
        report.status = "ok"
    except UserError as error:
        report.message = str(error)
    return report


def time_cell(
    cell: Cell,
    runtimes: tuple[str, ...],
    plan: Plan,
    output: Path,
    checkpoint: str | None,
    records_dir: Path,
    runner: Runner,
    finish: Callable[[JobReport], None],
) -> list[str]:
    """One ``bench latency`` call for ``runtimes``; stores its records, returns the runtimes without one."""
    started = time.perf_counter()
    outcome = runner(latency_command(cell, ",".join(runtimes), plan, output, checkpoint), plan.timeout_s)
    report = JobReport(f"latency {cell.label} {','.join(runtimes)}", "ok", time.perf_counter() - started)
    # Records written before a later runtime failed are real measurements: keep them.
    try:
        collected = collect_latency_records(output, records_dir) if output.is_dir() else []
    except UserError as error:
        collected, outcome = [], JobOutcome(1, str(error))
    report.records = [path for _, path in collected]
    missing = [runtime for runtime in runtimes if runtime not in {name for name, _ in collected}]
    if missing:
        report.status = "failed"
        reason = _message(outcome) if outcome.returncode else "it exited 0"
        report.message = f"no record for {', '.join(missing)} ({reason})"
    finish(report)
    return missing


# -- counting -------------------------------------------------------------------------------------


def count_profile(model: SuiteModel) -> dict[str, Any]:
    """Count one suite model with ``bench profile --json`` (in-process); a ``profile`` record."""
    import torch
    import torchvision

    from benchmark.cli import main
    from tasks import get_task

    num_classes = get_task(model.task).default_num_classes
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(["profile", *model.profile_flags(num_classes), "--json"])
        except SystemExit as exit_:  # argparse rejected a flag (a task option not built yet)
            code = exit_.code if isinstance(exit_.code, int) else 2
    if code != 0:
        reason = (stderr.getvalue().strip().splitlines() or [f"exit code {code}"])[-1]
        raise UserError(f"bench profile {' '.join(model.profile_flags(num_classes))}: {reason}")
    counts = json.loads(stdout.getvalue().strip().splitlines()[-1])
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "profile",
        "key": model.key,
        "task": model.task,
        "backbone": model.backbone,
        "width": model.width,
        "resolution": model.resolution,
        "num_classes": counts.get("num_classes", num_classes),
        "options": list(model.options),
        "params": counts["params"],
        "madds": counts["madds"],
        "profile": counts,
        "counted_with": {
            "torch": torch.__version__.split("+")[0],
            "torchvision": torchvision.__version__.split("+")[0],
        },
    }


def recount(
    records_dir: Path, baselines: Baselines = BASELINES, tasks: Iterable[str] | None = None
) -> list[str]:
    """Count every suite model the baselines name (of registered tasks) into ``profile`` records.

    Returns one log line per model. A model whose task or option is not available yet is skipped
    with its reason; its reported row keeps an empty *counted* cell.
    """
    from tasks import list_tasks

    registered = set(list_tasks())
    wanted = set(tasks) if tasks is not None else None
    lines = []
    for model in baselines.suite_models():
        if wanted is not None and model.task not in wanted:
            continue
        if model.task not in registered:
            lines.append(f"count {model.key}: skipped (task {model.task} not registered)")
            continue
        try:
            record = count_profile(model)
        except UserError as error:
            lines.append(f"count {model.key}: skipped ({error})")
            continue
        path, changed = add_record(record, records_dir)
        state = "updated" if changed else "unchanged"
        lines.append(
            f"count {model.key}: {record['params']:,} params, {record['madds'] / 1e6:,.1f}M MAdds ({state})"
        )
    return lines
