"""A sweep on a submitit executor: submit the plan's cells as jobs, follow them, requeue, collect records.

The sweep folder holds ``sweep.json`` (the grid's fingerprint and every cell's jobs), submitit's job
files and logs (``jobs/``), and each cell's run folder. A cell's state comes from the scheduler
(``squeue`` for a Slurm job the controller still knows, the process for a local one) and then from
its files (``result.json``, latency records, submitit's result). Re-running the same sweep submits
only what is missing; a folder from another grid is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backbones.errors import UserError
from benchmark.leaderboards.store import import_record_file
from benchmark.runs.records import write_json_atomic
from benchmark.sweeps.executors import CellJob, SlurmOptions, make_executor, max_array_size
from benchmark.sweeps.jobs import collect_latency_records, latency_command, run_command, trained_checkpoint
from benchmark.sweeps.plan import Plan

MANIFEST = "sweep.json"
LIVE = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUE_HOLD",
        "REQUEUE_FED", "SIGNALING", "STAGE_OUT"}


def grid_fingerprint(plan: Plan) -> str:
    grid = {"cells": [asdict(c) for c in plan.cells], "runtimes": plan.runtimes, "stages": plan.stages,
            "run_args": plan.run_args, "latency_args": plan.latency_args, "data": plan.data}
    return hashlib.sha256(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class CellState:
    name: str  # "run <label>" or "latency <label>"
    state: str  # missing, pending, running, done, failed
    job_id: str = ""
    metric: str = ""
    wall_s: float | None = None
    log: str = ""
    message: str = ""


def load_manifest(folder: Path, plan: Plan | None) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        if plan is None:
            raise UserError(f"--status {folder}: no {MANIFEST} there (not a sweep folder)")
        return {"fingerprint": grid_fingerprint(plan), "jobs": {}}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if plan is not None and manifest.get("fingerprint") != grid_fingerprint(plan):
        raise UserError(f"--workdir {folder}: a sweep of another grid ({manifest.get('command', '?')}); "
                        "use a new folder for this grid")
    return manifest


def slurm_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (state, reason) for the jobs the Slurm controller still knows (squeue, one line per task)."""
    if not job_ids:
        return {}
    ids = sorted({j.split("_")[0] for j in job_ids})
    try:
        done = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r", "-j", ",".join(ids)],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def local_alive(job_id: str) -> bool:
    try:
        stat = Path(f"/proc/{int(job_id)}/stat").read_text()
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def job_paths(folder: Path, job_id: str):
    from submitit.core.utils import JobPaths

    return JobPaths(folder / "jobs", job_id=job_id, task_id=0)


def cell_state(folder: Path, manifest: dict, name: str, output: Path, kind: str, live: dict, plan_runtimes) -> CellState:
    entry = manifest["jobs"].get(name)
    if entry is None:
        return CellState(name, "missing")
    job_id = entry["job_ids"][-1]
    paths = job_paths(folder, job_id)
    state = CellState(name, "failed", job_id, log=str(paths.stderr if paths.stderr.exists() else paths.stdout))
    scheduler = live.get(job_id, ("", ""))[0] if manifest["executor"] == "slurm" else (
        "RUNNING" if local_alive(job_id) else "")
    if scheduler in LIVE:
        state.state = "pending" if scheduler == "PENDING" else "running"
        state.message = live.get(job_id, ("", ""))[1] if scheduler == "PENDING" else ""
        return state
    result = output / "result.json"
    if kind == "run" and result.is_file():
        record = json.loads(result.read_text(encoding="utf-8"))
        first = next(iter(record.get("metrics", {}).items()), None)
        state.state, state.wall_s = "done", record.get("wall_time_s")
        state.metric = f"{first[0]} {first[1]:.2f}" if first else ""
        return state
    if kind == "latency" and output.is_dir():
        records = [json.loads(p.read_text()) for p in sorted(output.rglob("*.json")) if '"latency"' in p.read_text()]
        timed = {r.get("runtime") for r in records if r.get("kind") == "latency"}
        if timed >= set(plan_runtimes):
            state.state, state.metric = "done", f"{len(timed)} runtime(s)"
            return state
    outcome = _outcome(paths)
    if outcome == "success" or scheduler == "COMPLETED":
        raise UserError(f"{name}: job {job_id} COMPLETED but its {'result.json' if kind == 'run' else 'records'} "
                        f"in {output} is missing (log {state.log})")
    state.message = scheduler or outcome or "ended without a result"
    return state


def _outcome(paths) -> str:
    import pickle

    try:
        with paths.result_pickle.open("rb") as f:
            return pickle.load(f)[0]
    except (OSError, EOFError, pickle.UnpicklingError, IndexError):
        return ""


def sweep_status(folder: Path, plan: Plan | None = None) -> list[CellState]:
    """Every cell of the sweep folder, from the scheduler and the files."""
    manifest = load_manifest(folder, plan)
    if not manifest["jobs"] and plan is None:
        return []
    live = slurm_states([i for e in manifest["jobs"].values() for i in e["job_ids"]]) \
        if manifest.get("executor") == "slurm" else {}
    states = []
    for name, entry in manifest["jobs"].items():
        states.append(cell_state(folder, manifest, name, Path(entry["output"]), entry["kind"], live,
                                 entry.get("runtimes", ())))
    return states


def format_status(states: list[CellState]) -> str:
    lines = [f"{'cell':44} {'state':8} {'job':12} {'metric':22} {'wall s':>7}  log / reason"]
    for s in states:
        wall = f"{s.wall_s:7.1f}" if s.wall_s is not None else "      -"
        tail = s.message if s.state in ("pending", "failed") and s.message else ""
        log = s.log if s.state in ("failed", "running") else ""
        lines.append(f"{s.name:44} {s.state:8} {s.job_id:12} {s.metric:22} {wall}  {' '.join(filter(None, [log, tail]))}")
    return "\n".join(lines)


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
    folder.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(folder, plan)
    manifest.update(executor=executor_kind, name=name, command=command)
    env = {"WANDB_RUN_GROUP": name, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
           "WANDB_SILENT": "true"}
    run_args = _distributed_args(options)
    cells = {f"run {c.label}": (c, "run") for c in plan.cells if "run" in plan.stages}
    cells.update({f"latency {c.label}": (c, "latency") for c in plan.cells if "latency" in plan.stages})
    executors: dict[bool, Any] = {}
    split = max_array_size() if executor_kind == "slurm" else 10**9
    started = time.monotonic()

    def submit(names: list[str], exclusive: bool) -> None:
        if exclusive not in executors:
            executors[exclusive] = make_executor(executor_kind, folder / "jobs", options, exclusive=exclusive)
        functions = []
        for cell_name in names:
            cell, kind = cells[cell_name]
            output = folder / cell.folder_name / kind
            if kind == "run":
                argv = run_command(cell, plan, output) + run_args
            else:
                checkpoint = trained_checkpoint(folder / cell.folder_name / "run")
                argv = latency_command(cell, ",".join(plan.runtimes), plan, output, str(checkpoint) if checkpoint else None)
            functions.append((cell_name, output, kind, CellJob(argv, output, env, resumable=kind == "run")))
        for start in range(0, len(functions), split):
            chunk = functions[start:start + split]
            jobs = _submit_array(executors[exclusive], [f for *_, f in chunk], options)
            for (cell_name, output, kind, _), job in zip(chunk, jobs, strict=True):
                entry = manifest["jobs"].setdefault(cell_name, {"job_ids": [], "output": str(output), "kind": kind,
                                                                 "runtimes": list(plan.runtimes)})
                entry["job_ids"].append(str(job.job_id))
                entry.setdefault("submitted", []).append(time.time())
                log(f"submitted {cell_name}: job {job.job_id}")
        write_json_atomic(folder / MANIFEST, manifest)

    write_json_atomic(folder / MANIFEST, manifest)
    collected: set[str] = set()
    while True:
        states = {s.name: s for s in sweep_status(folder, plan)}
        for cell_name in cells:
            states.setdefault(cell_name, CellState(cell_name, "missing"))
        for s in states.values():
            if s.state == "done" and s.name not in collected:
                collected.add(s.name)
                _collect(s, cells[s.name][1], Path(manifest["jobs"][s.name]["output"]), records_dir, log)
            if s.state == "pending" and s.message in ("PartitionTimeLimit", "AccountNotAllowed",
                                                      "InvalidAccount", "QOSMaxWallDurationPerJobLimit"):
                _cancel(manifest)
                raise UserError(f"--time-min/--partition/--account: the scheduler holds job {s.job_id} with "
                                f"reason {s.message}")
        tries = {n: len(manifest["jobs"].get(n, {}).get("job_ids", [])) for n in cells}
        again = [n for n, s in states.items() if s.state in ("missing", "failed") and tries[n] <= retries]
        for n in again:
            if states[n].state == "failed":
                log(f"{n}: job {states[n].job_id} ended ({states[n].message}); resubmitting, it resumes from its checkpoint")
        runs = [n for n in again if cells[n][1] == "run"]
        runs_busy = any(s.state in ("pending", "running") for n, s in states.items() if cells[n][1] == "run")
        if runs:
            submit(runs, exclusive=False)
        elif not runs_busy and not any(cells[n][1] == "run" and states[n].state != "done" and tries[n] <= retries
                                       for n in cells):
            # Latency cells time trained models, one at a time, never beside another job.
            latency = [n for n in again if cells[n][1] == "latency"
                       and ("run" not in plan.stages or states[f"run {cells[n][0].label}"].state == "done")]
            busy = any(s.state in ("pending", "running") for n, s in states.items() if cells[n][1] == "latency")
            if latency and not busy:
                submit(latency if executor_kind == "slurm" else latency[:1], exclusive=True)
        finished = all(s.state == "done" or (s.state == "failed" and tries[n] > retries) for n, s in states.items())
        if finished and not again or not wait:
            break
        time.sleep(poll_s)
    final = sweep_status(folder, plan)
    log(format_status(final))
    log(f"sweep {name}: {sum(s.state == 'done' for s in final)} of {len(final)} cells done in "
        f"{time.monotonic() - started:.1f} s ({executor_kind} executor)")
    return final


def _distributed_args(options: SlurmOptions) -> list[str]:
    """A job of several GPUs/nodes trains with DDP over them, its ranks read from SLURM by Lightning."""
    if not options.gpus_per_job:
        return []
    args = ["--accelerator", "gpu", "--devices", str(options.gpus_per_job), "--num-nodes", str(options.nodes)]
    return args + (["--strategy", "ddp"] if options.gpus_per_job * options.nodes > 1 else [])


def _submit_array(executor, functions: list[CellJob], options: SlurmOptions):
    """One job array (submitit's batch); sbatch's refusal is passed through as one line."""
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

