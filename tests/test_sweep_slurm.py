"""bench sweep --executor local|slurm: real 3-cell quick-tier sweeps (submitit's local executor, and a real
one-node Slurm cluster started here), a killed / scancel'ed cell resubmitted and resumed to the very
weights of an uninterrupted `bench run`, --status, and the bad inputs (one line, exit 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from slurm_cluster import missing_tools, one_node_cluster

from benchmark.cli import main

BENCH = [sys.executable, "-m", "benchmark.cli"]
# 24 steps, a checkpoint every 3: the interrupt lands between the first checkpoint and the last step
# even where a step takes 50 ms (interrupting after the last step would leave nothing to resume).
STEPS = 24
RUN_ARGS = f"--max-steps {STEPS} --batch-size 4 --num-workers 0 --seed 5"
CELLS = ["--tier", "quick", "--tasks", "classification", "--backbones", "mnv1,mnv2,mobilenet_v3_small",
         "--widths", "0.35", "--resolutions", "64", "--stages", "run"]
KILLED = "classification_mnv2_w0.35_r64"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "every3.yaml"
    path.write_text("checkpoint_every: 3\ndeterministic: true\n")
    return path


def sweep_argv(work: Path, recipe: Path, *extra: str) -> list[str]:
    return [*BENCH, "sweep", *CELLS, "--run-args", f"{RUN_ARGS} --config {recipe}", "--records",
            str(work / "records"), "--workdir", str(work / "sweep"), *extra]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, recipe: Path) -> Path:
    """The killed cell run by plain `bench run`, uninterrupted: the reference weights and metrics."""
    out = tmp_path_factory.mktemp("reference") / "run"
    args = [*BENCH, "run", "--task", "classification", "--backbone", "mnv2", "--width", "0.35", "--resolution",
            "64", "--logger", "none", *RUN_ARGS.split(), "--config", str(recipe), "--output", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run / "checkpoints" / "step.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == STEPS
    return checkpoint["state_dict"]


def run_and_interrupt(argv: list[str], work: Path, interrupt, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    """Run the sweep; when the killed cell's first checkpoint appears, ``interrupt`` it."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    first = work / "sweep" / KILLED / "run" / "checkpoints" / "step.ckpt"
    while not first.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() - started < 500, "no checkpoint appeared"
        time.sleep(0.02)
    interrupt()
    out, _ = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(argv, proc.returncode, out, ""), time.monotonic() - started


def check_sweep(work: Path, output: str, uninterrupted: Path) -> None:
    records = sorted((work / "records").glob("result-*.json"))
    assert len(records) == 3, output
    killed = json.loads((work / "sweep" / KILLED / "run" / "result.json").read_text())
    reference = json.loads((uninterrupted / "result.json").read_text())
    assert 3 <= killed["resumed_from_step"] < STEPS and killed["steps"] == STEPS, output
    assert killed["metrics"] == reference["metrics"]  # to the last digit
    expected, got = final_weights(uninterrupted), final_weights(work / "sweep" / KILLED / "run")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    status = subprocess.run([*BENCH, "sweep", "--status", str(work / "sweep")], capture_output=True, text=True,
                            env=ENV, timeout=120)
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


def test_local_executor_sweep_resumes_a_sigkilled_cell(tmp_path: Path, recipe: Path, uninterrupted: Path) -> None:
    work = tmp_path
    run = work / "sweep" / KILLED / "run"
    done, seconds = run_and_interrupt(sweep_argv(work, recipe, "--executor", "local"), work,
                                      lambda: os.kill(_bench_run_pid(run), signal.SIGKILL), ENV)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "resubmitting, it resumes from its checkpoint" in done.stdout
    check_sweep(work, done.stdout, uninterrupted)
    print(f"local executor: 3-cell sweep {seconds:.1f} s")
    # The same sweep again submits nothing; another grid in this folder is refused.
    again = subprocess.run(sweep_argv(work, recipe, "--executor", "local"), capture_output=True, text=True,
                           env=ENV, timeout=300)
    assert again.returncode == 0 and "submitted" not in again.stdout, again.stdout
    other = subprocess.run([*sweep_argv(work, recipe, "--executor", "local"), "--resolutions", "96"],
                           capture_output=True, text=True, env=ENV, timeout=300)
    assert other.returncode == 2 and "a sweep of another grid" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    missing = missing_tools()
    if missing:
        pytest.skip(f"Slurm/munge not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)")
    with one_node_cluster(tmp_path_factory.mktemp("slurm"), max_array_size=2) as env:
        yield env


def test_slurm_sweep_array_and_scancel_resumes(tmp_path: Path, recipe: Path, uninterrupted: Path, slurm) -> None:
    # Only the cluster's config on top of ENV: os.environ as earlier in-process tests left it (a run's
    # BENCH_RUN_OUTPUT, Lightning's PL_* seeds) must not reach the cells and make them differ.
    env = {**ENV, "SLURM_CONF": slurm["SLURM_CONF"]}
    work = tmp_path

    def cancel() -> None:
        manifest = json.loads((work / "sweep" / "sweep.json").read_text())
        job = manifest["jobs"]["run classification mnv2 w0.35 @64"]["job_ids"][-1]
        subprocess.run(["scancel", job], env=env, check=True)

    done, seconds = run_and_interrupt(sweep_argv(work, recipe, "--executor", "slurm", "--time-min", "20"),
                                      work, cancel, env)
    assert done.returncode == 0, done.stdout[-3000:]
    manifest = json.loads((work / "sweep" / "sweep.json").read_text())
    first = [entry["job_ids"][0] for entry in manifest["jobs"].values()]
    # Three cells, MaxArraySize=2: an array of two tasks, then the third alone (submitit: a plain job).
    assert sorted(j.partition("_")[2] for j in first) == ["", "0", "1"] and len({j.split("_")[0] for j in first}) == 2
    assert len(manifest["jobs"]["run classification mnv2 w0.35 @64"]["job_ids"]) == 2, done.stdout
    check_sweep(work, done.stdout, uninterrupted)
    print(f"slurm executor: 3-cell sweep {seconds:.1f} s")


def test_slurm_time_limit_the_partition_refuses(tmp_path: Path, recipe: Path, slurm, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
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
    """submitit says the job succeeded, but the cell's result.json is gone: one line, exit 2."""
    import pickle

    from benchmark.sweeps.plan import QUICK, make_plan
    from benchmark.sweeps.scheduled import MANIFEST, grid_fingerprint

    sweep = tmp_path / "sweep"
    plan = make_plan(QUICK, tasks="classification", backbones="mnv2", widths="0.35", resolutions="64", stages="run",
                     run_args=f"{RUN_ARGS} --config {recipe}", gpu=False)
    (sweep / "jobs").mkdir(parents=True)
    (sweep / "jobs" / "999999_0_result.pkl").write_bytes(pickle.dumps(("success", "")))
    (sweep / MANIFEST).write_text(json.dumps({"fingerprint": grid_fingerprint(plan), "executor": "local", "jobs": {
        "run classification mnv2 w0.35 @64": {"job_ids": ["999999"], "output": str(sweep / KILLED / "run"),
                                              "kind": "run"}}}))
    assert main(["sweep", "--status", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "COMPLETED but its result.json" in err[0], err
