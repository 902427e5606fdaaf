"""bench sweep --executor local|slurm: real 3-cell quick-tier sweeps (submitit's local executor, and a real
one-node Slurm cluster started here), a killed / scancel'ed cell resubmitted and resumed to the very
weights of an uninterrupted `bench run`, a failing squeue that submits nothing twice, --status, and the
bad inputs (one line, exit 2).

Every cell waits at step 3 (``BENCH_HOLD_AT_STEP``, after its step-3 checkpoint) until the test has
interrupted the one it kills and released the others, so the interrupt lands at a known step however
loaded the machine is.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import completed
from requirements_helpers import require
from slurm_cluster import Cluster, missing_tools, one_node_cluster

from benchmark.cli import main
from benchmark.runs.hold import MARKER, RELEASE

BENCH = [sys.executable, "-m", "benchmark.cli"]
STEPS = 9  # a checkpoint every 3 steps; every cell is held at step 3 (see the docstring)
HOLD_STEP = 3
RUN_ARGS = f"--max-steps {STEPS} --batch-size 4 --num-workers 0 --seed 5"
CELLS = ["--tier", "quick", "--tasks", "classification", "--backbones", "mnv1,mnv2,mobilenet_v3_small",
         "--widths", "0.35", "--resolutions", "64", "--stages", "run"]
FOLDERS = ["classification_mnv1_w0.35_r64", "classification_mnv2_w0.35_r64", "classification_mobilenet_v3_small_r64"]
KILLED = "classification_mnv2_w0.35_r64"
KILLED_CELL = "run classification mnv2 w0.35 @64"


@pytest.fixture(scope="module")
def bench_env() -> dict[str, str]:
    """The cells' environment, built after conftest.py set BENCH_CACHE; nothing an earlier in-process
    test may have left behind (a run's BENCH_RUN_OUTPUT, Lightning's PL_* seeds) reaches them."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BENCH_RUN_OUTPUT", "BENCH_HOLD_AT_STEP") and not k.startswith(("PL_", "SLURM_"))}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "every3.yaml"
    path.write_text("checkpoint_every: 3\ndeterministic: true\n")
    return path


def sweep_argv(work: Path, recipe: Path, *extra: str) -> list[str]:
    return [*BENCH, "sweep", *CELLS, "--run-args", f"{RUN_ARGS} --config {recipe}", "--records",
            str(work / "records"), "--workdir", str(work / "sweep"), *extra]


def held_env(env: dict[str, str], work: Path) -> dict[str, str]:
    """Every cell's first run waits at step 3; a resubmitted (resuming) run does not."""
    holds = ";".join(f"{HOLD_STEP}:{work / 'sweep' / folder / 'run'}" for folder in FOLDERS)
    return {**env, "BENCH_HOLD_AT_STEP": holds}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, recipe: Path) -> Path:
    """The killed cell run by plain `bench run` in this process with one thread (as the cells' one-thread
    processes), uninterrupted: the reference weights and metrics."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["run", "--task", "classification", "--backbone", "mnv2", "--width", "0.35", "--resolution", "64",
                 "--logger", "none", *RUN_ARGS.split(), "--threads", "1", "--config", str(recipe),
                 "--output", str(out)]) == 0
    return out


def diagnostics(work: Path, cluster: Cluster | None = None) -> str:
    """What a failing sweep test prints: the sweep's output, every job's logs, the daemons' logs."""
    parts = []
    for path in [work / "sweep.log", *sorted((work / "sweep" / "jobs").glob("*.err")),
                 *sorted((work / "sweep" / "jobs").glob("*.out"))]:
        if path.is_file():
            parts.append(f"--- {path}\n{path.read_text(errors='replace')[-2500:]}")
    return "\n".join(parts + ([cluster.logs()] if cluster else []))


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run / "checkpoints" / "step.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == STEPS
    return checkpoint["state_dict"]


def wait_until(ready, what: str, proc: subprocess.Popen, work: Path, cluster: Cluster | None = None,
               timeout: float = 500) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the sweep ended before {what}\n{diagnostics(work, cluster)}"
        assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s\n{diagnostics(work, cluster)}"
        time.sleep(0.05)


def release_others(work: Path) -> None:
    for folder in FOLDERS:
        if folder != KILLED:
            run = work / "sweep" / folder / "run"
            run.mkdir(parents=True, exist_ok=True)  # a cell still pending finds it released when it starts
            (run / RELEASE).write_text("")


def start_sweep(argv: list[str], work: Path, env: dict[str, str]) -> subprocess.Popen:
    log = open(work / "sweep.log", "w")  # a file, not a pipe: nothing blocks however much the sweep says
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)


def check_sweep(work: Path, uninterrupted: Path, capsys, resumed_from: int, cluster: Cluster | None = None) -> None:
    records = sorted((work / "records").glob("result-*.json"))
    assert len(records) == 3, diagnostics(work, cluster)
    killed = json.loads((work / "sweep" / KILLED / "run" / "result.json").read_text())
    reference = json.loads((uninterrupted / "result.json").read_text())
    assert (killed["resumed_from_step"], killed["steps"]) == (resumed_from, STEPS), diagnostics(work, cluster)
    assert killed["metrics"] == reference["metrics"]  # to the last digit
    expected, got = final_weights(uninterrupted), final_weights(work / "sweep" / KILLED / "run")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    manifest = json.loads((work / "sweep" / "sweep.json").read_text())
    # Only the interrupted cell ran twice.
    assert {n: len(e["job_ids"]) for n, e in manifest["jobs"].items()} == {
        "run classification mnv1 w0.35 @64": 1, KILLED_CELL: 2, "run classification mobilenet_v3_small @64": 1}
    status = completed(["sweep", "--status", str(work / "sweep")], capsys)
    assert status.returncode == 0, status.stderr
    rows = status.stdout.splitlines()[1:]
    assert len(rows) == 3 and all(" done " in row and "top1" in row for row in rows), status.stdout


def _bench_run_pid(output: Path) -> int:
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"benchmark.cli" in cmd and b"run" in cmd and str(output).encode() in cmd:
            return int(proc.name)
    raise AssertionError(f"no bench run process for {output}")


def test_local_executor_sweep_resumes_a_sigkilled_cell(tmp_path: Path, recipe: Path, uninterrupted: Path,
                                                       bench_env: dict[str, str], capsys) -> None:
    work, run = tmp_path, tmp_path / "sweep" / KILLED / "run"
    started = time.monotonic()
    proc = start_sweep(sweep_argv(work, recipe, "--executor", "local"), work, held_env(bench_env, work))
    wait_until(lambda: (run / MARKER).exists(), f"{run / MARKER}", proc, work)
    os.kill(_bench_run_pid(run), signal.SIGKILL)
    release_others(work)
    assert proc.wait(timeout=600) == 0, diagnostics(work)
    out = (work / "sweep.log").read_text()
    assert "resubmitting, it resumes from its checkpoint" in out, diagnostics(work)
    check_sweep(work, uninterrupted, capsys, resumed_from=HOLD_STEP)
    # Each job's own outcome file: the killed one's command died by SIGKILL, the others succeeded.
    manifest = json.loads((work / "sweep" / "sweep.json").read_text())
    outcomes = {job: json.loads((work / "sweep" / "jobs" / f"{job}_outcome.json").read_text())
                for entry in manifest["jobs"].values() for job in entry["job_ids"]}
    first_killed = manifest["jobs"][KILLED_CELL]["job_ids"][0]
    assert outcomes.pop(first_killed) == {"state": "failed", "returncode": -signal.SIGKILL}
    assert list(outcomes.values()) == [{"state": "success", "returncode": 0}] * 3
    print(f"local executor: 3-cell sweep {time.monotonic() - started:.1f} s")
    # The same sweep again submits nothing; another grid in this folder is refused.
    again = completed(sweep_argv(work, recipe, "--executor", "local")[len(BENCH):], capsys)
    assert again.returncode == 0 and "submitted" not in again.stdout, again.stdout
    other = completed([*sweep_argv(work, recipe, "--executor", "local")[len(BENCH):], "--resolutions", "96"], capsys)
    assert other.returncode == 2 and "a sweep of another grid" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Cluster:
    missing = missing_tools()
    if missing:
        require("slurm", f"Slurm/munge not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)")
    with one_node_cluster(tmp_path_factory.mktemp("slurm"), max_array_size=2) as cluster:
        yield cluster


FAILING_SQUEUE = """#!/bin/sh
echo "$*" >> "{calls}"
if [ -e "{flag}" ]; then
  echo "squeue: error: slurm_receive_msg: Socket timed out on send/recv operation" >&2
  exit 1
fi
exec {real} "$@"
"""


def test_slurm_sweep_squeue_failure_and_scancel(tmp_path: Path, recipe: Path, uninterrupted: Path, slurm: Cluster,
                                                bench_env: dict[str, str], monkeypatch, capsys) -> None:
    """While two cells are held at step 3 and the third is pending, squeue fails for several polls:
    every cell is "unknown" (in --status too) and nothing is submitted. Then one cell is scancel'ed:
    it is resubmitted once and resumes to the uninterrupted run's weights."""
    work = tmp_path
    bin_dir, calls, flag = work / "bin", work / "squeue-calls", work / "squeue-fails"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text(FAILING_SQUEUE.format(calls=calls, flag=flag, real=shutil.which("squeue")))
    squeue.chmod(0o755)
    env = {**bench_env, "SLURM_CONF": slurm.env["SLURM_CONF"], "PATH": f"{bin_dir}:{bench_env['PATH']}"}
    started = time.monotonic()
    proc = start_sweep(sweep_argv(work, recipe, "--executor", "slurm", "--time-min", "20"), work,
                       held_env(env, work))
    held = [work / "sweep" / folder / "run" / MARKER for folder in FOLDERS[:2]]  # the array; the third waits
    wait_until(lambda: all(p.exists() for p in held), "cells held at step 3", proc, work, slurm)
    manifest = json.loads((work / "sweep" / "sweep.json").read_text())
    submitted = {name: entry["job_ids"] for name, entry in manifest["jobs"].items()}
    flag.touch()
    failed_from = len(calls.read_text().splitlines())
    wait_until(lambda: len(calls.read_text().splitlines()) >= failed_from + 3, "three failing squeue polls",
               proc, work, slurm)
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    monkeypatch.setenv("PATH", env["PATH"])  # the failing squeue first
    status = completed(["sweep", "--status", str(work / "sweep")], capsys)
    rows = status.stdout.splitlines()[1:]
    assert status.returncode == 0 and len(rows) == 3, status.stdout + status.stderr
    assert all(" unknown " in row and "squeue failed: squeue: error: slurm_receive_msg: Socket timed out" in row
               for row in rows), status.stdout
    flag.unlink()
    manifest = json.loads((work / "sweep" / "sweep.json").read_text())
    assert {name: entry["job_ids"] for name, entry in manifest["jobs"].items()} == submitted, diagnostics(work)
    assert "not resubmitted until the scheduler answers" in (work / "sweep.log").read_text(), diagnostics(work)

    subprocess.run(["scancel", submitted[KILLED_CELL][-1]], env=env, check=True)
    release_others(work)
    assert proc.wait(timeout=600) == 0, diagnostics(work, slurm)
    manifest = json.loads((work / "sweep" / "sweep.json").read_text())
    first = [entry["job_ids"][0] for entry in manifest["jobs"].values()]
    # Three cells, MaxArraySize=2: an array of two tasks, then the third alone (submitit: a plain job).
    assert sorted(j.partition("_")[2] for j in first) == ["", "0", "1"] and len({j.split("_")[0] for j in first}) == 2
    # SIGTERM reached the held run: Lightning finished step 4 and saved interrupted.ckpt there.
    check_sweep(work, uninterrupted, capsys, resumed_from=HOLD_STEP + 1, cluster=slurm)
    print(f"slurm executor: 3-cell sweep {time.monotonic() - started:.1f} s")


def test_slurm_time_limit_the_partition_refuses(tmp_path: Path, recipe: Path, slurm, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    argv = sweep_argv(tmp_path, recipe, "--executor", "slurm", "--time-min", "600")[3:]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PartitionTimeLimit" in err[0]
    bad = sweep_argv(tmp_path / "b", recipe, "--executor", "slurm", "--partition", "nope")[3:]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--partition nope: sbatch refused the job" in err[0] and "partition" in err[0].lower()


def test_no_sbatch_on_path(tmp_path: Path, recipe: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(sweep_argv(tmp_path, recipe, "--executor", "slurm")[3:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench sweep: error: --executor slurm: sbatch is not on PATH (run on a cluster login node, "
                   "or install slurm-client)"] or (len(err) == 1 and "sbatch is not on PATH" in err[0])


def test_completed_cell_without_its_record(tmp_path: Path, recipe: Path, capsys) -> None:
    """The job's outcome file says its command succeeded, but the cell's result.json is gone: one line, exit 2."""
    from benchmark.sweeps.manifest import MANIFEST, grid_fingerprint
    from benchmark.sweeps.plan import QUICK, make_plan

    sweep = tmp_path / "sweep"
    plan = make_plan(QUICK, tasks="classification", backbones="mnv2", widths="0.35", resolutions="64", stages="run",
                     run_args=f"{RUN_ARGS} --config {recipe}", gpu=False)
    (sweep / "jobs").mkdir(parents=True)
    (sweep / "jobs" / "999999_outcome.json").write_text(json.dumps({"state": "success", "returncode": 0}))
    # PID 999999 with a start time no live process has: the job has ended.
    (sweep / MANIFEST).write_text(json.dumps({"fingerprint": grid_fingerprint(plan), "executor": "local", "jobs": {
        KILLED_CELL: {"job_ids": ["999999"], "process_starts": [1], "output": str(sweep / KILLED / "run"),
                      "kind": "run"}}}))
    assert main(["sweep", "--status", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "COMPLETED but its result.json" in err[0], err
