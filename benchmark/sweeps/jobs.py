"""Sweep jobs: run ``bench run`` / ``bench latency`` per cell and collect their records.

Each job is a separate ``python -m benchmark.cli ...`` process writing into a scratch folder;
its records are validated and copied into the records store under content-derived names
(``benchmark.leaderboards.store.add_record``, atomic). A failing job is reported and the sweep goes
on. The job runner is a parameter, so tests drive the whole sweep with a fake one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backbones.errors import UserError
from benchmark.leaderboards.baselines import BASELINES, Baselines
from benchmark.leaderboards.store import MIN_LATENCY_TIER, add_record, import_record_file, load_record
from benchmark.sweeps.counting import recount
from benchmark.sweeps.plan import Cell, Plan


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

def run_command(cell: Cell, plan: Plan, output: Path) -> list[str]:
    data = ["--data", plan.data[cell.task]] if cell.task in plan.data else []
    return bench_command("run", *cell.model_flags(), *data, *plan.run_args, "--output", str(output))


def latency_command(cell: Cell, runtime: str, plan: Plan, output: Path, checkpoint: str | None) -> list[str]:
    """Time ``cell`` with one runtime; a trained run's checkpoint fixes the model (and the gate's weights)."""
    model = ["--task", cell.task, "--checkpoint", checkpoint] if checkpoint else cell.model_flags()
    data = ["--data", plan.data[cell.task]] if cell.task in plan.data else []
    # A task whose rows need a longer timing gets it whatever the sweep's tier (the last --tier wins),
    # so the sweep never stores a record `bench leaderboard --check` refuses.
    floor = ["--tier", MIN_LATENCY_TIER[cell.task]] if cell.task in MIN_LATENCY_TIER else []
    return bench_command(
        "latency", *model, *data, "--runtime", runtime, *plan.latency_args, *floor, "--output", str(output)
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


