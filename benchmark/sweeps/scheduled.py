"""A sweep on a submitit executor: submit the plan's cells as jobs, follow them, requeue, collect records.

The sweep folder holds ``sweep.json`` (the grid's fingerprint and every cell's jobs), submitit's job
files and logs (``jobs/``, with each job's JSON outcome), and each cell's run folder. A cell's state
comes from the scheduler (``benchmark.sweeps.scheduler``: live, ended or unknown) and then from its
files (``result.json``, latency records, the job's outcome). A cell is submitted again only when its
last job has ended and left no record; one whose job the scheduler could not report on is
"unknown" and left alone. Re-running the same sweep submits only what is missing; a folder from
another grid is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backbones.errors import UserError
from benchmark.leaderboards.store import import_record_file
from benchmark.runs.records import read_record, write_json_atomic
from benchmark.sweeps.executors import (
    CellJob,
    SlurmOptions,
    import_submitit,
    make_executor,
    max_array_size,
    outcome_path,
    read_outcome,
)
from benchmark.sweeps.jobs import collect_latency_records, latency_command, run_command, trained_checkpoint
from benchmark.sweeps.manifest import MANIFEST, grid_fingerprint, load_manifest
from benchmark.sweeps.plan import Plan
from benchmark.sweeps.scheduler import LIVE, UNKNOWN, JobPhase, SlurmWatch, local_phase, process_start
from tasks.progress import stage

__all__ = ["MANIFEST", "CellState", "format_status", "grid_fingerprint", "run_scheduled", "sweep_status"]
HELD_REASONS = ("PartitionTimeLimit", "AccountNotAllowed", "InvalidAccount", "QOSMaxWallDurationPerJobLimit")


@dataclass
class CellState:
    name: str  # "run <label>" or "latency <label>"
    state: str  # missing, pending, running, unknown, done, failed
    job_id: str = ""
    metric: str = ""
    wall_s: float | None = None
    log: str = ""
    message: str = ""


def job_paths(folder: Path, job_id: str):
    import_submitit()
    from submitit.core.utils import JobPaths

    return JobPaths(folder / "jobs", job_id=job_id, task_id=0)


def job_phase(manifest: dict, entry: dict, watch: SlurmWatch | None) -> JobPhase:
    """The cell's last job as its scheduler reports it."""
    job_id = entry["job_ids"][-1]
    if manifest["executor"] == "slurm":
        return watch.phase(job_id) if watch is not None else JobPhase(UNKNOWN, "", "not asked yet")
    starts = entry.get("process_starts", [])
    return local_phase(job_id, starts[-1] if len(starts) == len(entry["job_ids"]) else None)


def cell_state(folder: Path, manifest: dict, name: str, watch: SlurmWatch | None) -> CellState:
    entry = manifest["jobs"].get(name)
    if entry is None:
        return CellState(name, "missing")
    output, kind, job_id = Path(entry["output"]), entry["kind"], entry["job_ids"][-1]
    paths = job_paths(folder, job_id)
    state = CellState(name, "failed", job_id, log=str(paths.stderr if paths.stderr.exists() else paths.stdout))
    phase = job_phase(manifest, entry, watch)
    if phase.phase == LIVE:
        state.state = "pending" if phase.state == "PENDING" else "running"
        state.message = phase.reason if phase.state == "PENDING" else ""
        return state
    if _finished(state, output, kind, entry.get("runtimes", [])):
        return state
    if phase.phase == UNKNOWN:
        state.state, state.message = "unknown", phase.reason
        return state
    outcome, code = read_outcome(outcome_path(folder / "jobs", job_id))
    if outcome == "success" or phase.state == "COMPLETED":
        raise UserError(f"{name}: job {job_id} COMPLETED but its {'result.json' if kind == 'run' else 'records'} "
                        f"in {output} is missing (log {state.log})")
    said = {"failed": f"exit code {code}", "unknown": "its outcome file is unreadable"}.get(outcome, "no outcome written")
    state.message = f"{phase.state or phase.reason}, {said}"
    return state


def _finished(state: CellState, output: Path, kind: str, runtimes) -> bool:
    """Mark ``state`` done when the cell's records are there."""
    result = output / "result.json"
    if kind == "run" and result.is_file():
        record = read_record(result)
        first = next(iter(record.get("metrics", {}).items()), None)
        state.state, state.wall_s = "done", record.get("wall_time_s")
        state.metric = f"{first[0]} {first[1]:.2f}" if first else ""
        return True
    if kind == "latency" and output.is_dir():
        timed = set()
        for path in sorted(output.rglob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(record, dict) and record.get("kind") == "latency":
                    timed.add(record.get("runtime"))
        if timed >= set(runtimes):
            state.state, state.metric = "done", f"{len(timed)} runtime(s)"
            return True
    return False


def sweep_status(folder: Path, plan: Plan | None = None, watch: SlurmWatch | None = None) -> list[CellState]:
    """Every cell of the sweep folder, from the scheduler and the files; ``watch`` keeps what Slurm
    last said between calls (a fresh one asks once)."""
    manifest = load_manifest(folder, plan)
    if not manifest["jobs"] and plan is None:
        return []
    if manifest.get("executor") == "slurm":
        watch = watch if watch is not None else SlurmWatch()
        watch.look([entry["job_ids"][-1] for entry in manifest["jobs"].values()])
    return [cell_state(folder, manifest, name, watch) for name in manifest["jobs"]]


def format_status(states: list[CellState]) -> str:
    lines = [f"{'cell':44} {'state':8} {'job':12} {'metric':22} {'wall s':>7}  log / reason"]
    for s in states:
        wall = f"{s.wall_s:7.1f}" if s.wall_s is not None else "      -"
        tail = s.message if s.state in ("pending", "failed", "unknown") and s.message else ""
        log = s.log if s.state in ("failed", "running", "unknown") else ""
        lines.append(f"{s.name:44} {s.state:8} {s.job_id:12} {s.metric:22} {wall}  {' '.join(filter(None, [log, tail]))}")
    return "\n".join(lines)


BUSY = ("pending", "running", "unknown")  # unknown: maybe running; never run beside it, never resubmit it


def run_scheduled(
    plan: Plan,
    records_dir: Path,
    folder: Path,
    executor_kind: str,
    options: SlurmOptions,
    *,
    name: str,
    command: str,
    retries: int = 2,
    wait: bool = True,
    poll_s: float = 2.0,
    log: Callable[[str], None] = print,
) -> list[CellState]:
    """Submit what is missing, follow until every cell is done or failed for good; returns the final states."""
    sweep = ScheduledSweep(plan, records_dir, folder, executor_kind, options, name=name, command=command,
                           retries=retries, log=log)
    return sweep.follow(wait=wait, poll_s=poll_s)


class ScheduledSweep:
    """One ``bench sweep`` on an executor: its manifest, its cells and what Slurm last said of them."""

    def __init__(self, plan: Plan, records_dir: Path, folder: Path, executor_kind: str, options: SlurmOptions, *,
                 name: str, command: str, retries: int, log: Callable[[str], None]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.plan, self.records_dir, self.folder, self.kind, self.options = plan, records_dir, folder, executor_kind, options
        self.name, self.retries, self.log = name, retries, log
        self.manifest = load_manifest(folder, plan)
        self.manifest.update(executor=executor_kind, name=name, command=command)
        self.env = {"WANDB_RUN_GROUP": name, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
                    "WANDB_SILENT": "true"}
        self.run_args = _distributed_args(options)
        self.cells = {f"run {c.label}": (c, "run") for c in plan.cells if "run" in plan.stages}
        self.cells.update({f"latency {c.label}": (c, "latency") for c in plan.cells if "latency" in plan.stages})
        self.executors: dict[bool, Any] = {}
        self.split = max_array_size() if executor_kind == "slurm" else 10**9
        self.watch = SlurmWatch()  # what Slurm last said, kept for the whole sweep
        self.collected: set[str] = set()
        self.said_unknown: dict[str, str] = {}

    def follow(self, *, wait: bool, poll_s: float) -> list[CellState]:
        started = time.monotonic()
        write_json_atomic(self.folder / MANIFEST, self.manifest)
        # A bar of cells done on a terminal (one line at the end with --progress in logs); stdout keeps the log.
        with stage(f"sweep {self.name}", total=len(self.cells), unit="cells") as progress:
            while not self.step(progress) and wait:
                time.sleep(poll_s)
        final = sweep_status(self.folder, self.plan, self.watch)
        self.log(format_status(final))
        self.log(f"sweep {self.name}: {sum(s.state == 'done' for s in final)} of {len(final)} cells done in "
                 f"{time.monotonic() - started:.1f} s ({self.kind} executor)")
        return final

    def step(self, progress: Any) -> bool:
        """One poll: collect what finished, submit what may run now; True when nothing is left to do."""
        states = {s.name: s for s in sweep_status(self.folder, self.plan, self.watch)}
        for cell_name in self.cells:
            states.setdefault(cell_name, CellState(cell_name, "missing"))
        for s in states.values():
            self.note(s, progress)
        self.said_unknown = {n: s.message for n, s in states.items() if s.state == "unknown"}
        tries = {n: len(self.manifest["jobs"].get(n, {}).get("job_ids", [])) for n in self.cells}
        again = [n for n, s in states.items() if s.state in ("missing", "failed") and tries[n] <= self.retries]
        for n in again:
            if states[n].state == "failed":
                self.log(f"{n}: job {states[n].job_id} ended ({states[n].message}); resubmitting, it resumes from its "
                         "checkpoint")
        batch = _next_batch(again, states, self.cells, tries, self.plan, self.retries)
        if batch:
            names, exclusive = batch
            self.submit(names if self.kind == "slurm" or not exclusive else names[:1], exclusive)
        finished = all(s.state == "done" or (s.state == "failed" and tries[n] > self.retries) for n, s in states.items())
        return finished and not again

    def note(self, s: CellState, progress: Any) -> None:
        """A cell's new state: its records collected once it is done; a hold the user must lift, an error."""
        if s.state == "done" and s.name not in self.collected:
            self.collected.add(s.name)
            progress.advance()
            _collect(s, self.cells[s.name][1], Path(self.manifest["jobs"][s.name]["output"]), self.records_dir, self.log)
        if s.state == "pending" and s.message in HELD_REASONS:
            _cancel(self.manifest)
            raise UserError(f"--time-min/--partition/--account: the scheduler holds job {s.job_id} with "
                            f"reason {s.message}")
        if s.state == "unknown" and self.said_unknown.get(s.name) != s.message:
            self.log(f"{s.name}: job {s.job_id} state unknown ({s.message}); not resubmitted until the scheduler answers")

    def job(self, cell_name: str) -> tuple[Path, str, CellJob]:
        """A cell's output folder, kind and job (its ``bench`` command line)."""
        cell, kind = self.cells[cell_name]
        output = self.folder / cell.folder_name / kind
        if kind == "run":
            argv = run_command(cell, self.plan, output) + self.run_args
        else:
            checkpoint = trained_checkpoint(self.folder / cell.folder_name / "run")
            argv = latency_command(cell, ",".join(self.plan.runtimes), self.plan, output,
                                   str(checkpoint) if checkpoint else None)
        return output, kind, CellJob(argv, output, self.env, kind == "run", self.folder / "jobs")

    def submit(self, names: list[str], exclusive: bool) -> None:
        """Submit ``names`` (arrays of at most the cluster's MaxArraySize) and record their job ids."""
        if exclusive not in self.executors:
            self.executors[exclusive] = make_executor(self.kind, self.folder / "jobs", self.options, exclusive=exclusive)
        functions = [(cell_name, *self.job(cell_name)) for cell_name in names]
        for start in range(0, len(functions), self.split):
            chunk = functions[start:start + self.split]
            jobs = _submit_array(self.executors[exclusive], [f for *_, f in chunk], self.options)
            for (cell_name, output, kind, _), job in zip(chunk, jobs, strict=True):
                entry = self.manifest["jobs"].setdefault(cell_name, {"job_ids": [], "output": str(output), "kind": kind,
                                                                      "runtimes": list(self.plan.runtimes)})
                entry["job_ids"].append(str(job.job_id))
                entry.setdefault("submitted", []).append(time.time())
                if self.kind == "local":
                    # The controller is this process's child: its /proc entry stays until it is reaped.
                    entry.setdefault("process_starts", []).append(process_start(int(job.job_id)))
                self.log(f"submitted {cell_name}: job {job.job_id}")
        write_json_atomic(self.folder / MANIFEST, self.manifest)


def _next_batch(again: list[str], states: dict[str, CellState], cells: dict, tries: dict[str, int], plan: Plan,
                retries: int) -> tuple[list[str], bool] | None:
    """The cells to submit now and whether they need nodes of their own (latency), or None.

    Training cells go at once; latency cells time trained models, so only when no training cell
    is busy or still to be retried, one at a time and never beside another job.
    """
    runs = [n for n in again if cells[n][1] == "run"]
    if runs:
        return runs, False
    if any(cells[n][1] == "run" and (s.state in BUSY or (s.state != "done" and tries[n] <= retries))
           for n, s in states.items()):
        return None
    latency = [n for n in again if cells[n][1] == "latency"
               and ("run" not in plan.stages or states[f"run {cells[n][0].label}"].state == "done")]
    busy = any(s.state in BUSY for n, s in states.items() if cells[n][1] == "latency")
    return (latency, True) if latency and not busy else None


def _distributed_args(options: SlurmOptions) -> list[str]:
    """A job of several GPUs/nodes trains with DDP over them, its ranks read from SLURM by Lightning."""
    if not options.gpus_per_job:
        return []
    args = ["--accelerator", "gpu", "--devices", str(options.gpus_per_job), "--num-nodes", str(options.nodes)]
    return args + (["--strategy", "ddp"] if options.gpus_per_job * options.nodes > 1 else [])


def _submit_array(executor, functions: list[CellJob], options: SlurmOptions):
    """One job array (submitit's batch); sbatch's refusal is passed through as one line."""
    import_submitit()
    from submitit.core.utils import FailedJobError

    # submitit copies sbatch's stderr to sys.stderr as it runs: kept here, so a refusal is one line.
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), executor.batch():
            jobs = [executor.submit(f) for f in functions]
    except (FailedJobError, subprocess.CalledProcessError, OSError) as error:
        text = f"{said.getvalue()}\n{error}"
        lines = [line for line in text.splitlines() if "error" in line.lower()] or text.strip().splitlines()
        where = f"--partition {options.partition}" if options.partition else "--executor slurm"
        raise UserError(f"{where}: sbatch refused the job: {lines[-1].strip() if lines else error}") from None
    return jobs


def _collect(state: CellState, kind: str, output: Path, records_dir: Path, log: Callable[[str], None]) -> None:
    if kind == "run":
        path = import_record_file(output / "result.json", records_dir)[0]
        log(f"{state.name}: done ({state.metric}) -> {path.name}")
    else:
        for runtime, path in collect_latency_records(output, records_dir):
            log(f"{state.name} {runtime}: done -> {path.name}")


def _cancel(manifest: dict) -> None:
    ids = [e["job_ids"][-1] for e in manifest["jobs"].values()]
    if manifest.get("executor") == "slurm" and ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)

