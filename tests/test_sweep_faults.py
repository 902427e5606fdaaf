"""Sweep faults without a cluster: a scheduler that cannot answer, reused PIDs, hostile --slurm-config
values and sweep folders, the hold that tests interrupt runs at, and BENCH_REQUIRE."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from requirements_helpers import require

from benchmark.cli import main
from benchmark.runs.hold import MARKER, RELEASE, HoldAtStep, hold_from_env, parse_holds
from benchmark.sweeps.executors import SlurmOptions, read_outcome
from benchmark.sweeps.manifest import MANIFEST, grid_fingerprint
from benchmark.sweeps.plan import QUICK, make_plan
from benchmark.sweeps.scheduled import run_scheduled, sweep_status
from benchmark.sweeps.scheduler import ENDED, LIVE, UNKNOWN, SlurmWatch, local_phase, process_start

CELL = "run classification mnv2 w0.35 @64"
SWEEP = ["sweep", "--tier", "quick", "--tasks", "classification", "--backbones", "mnv2", "--widths", "0.35",
         "--resolutions", "64", "--stages", "run"]


def plan():
    return make_plan(QUICK, tasks="classification", backbones="mnv2", widths="0.35", resolutions="64", stages="run",
                     gpu=False)


def tool(folder: Path, name: str, script: str) -> None:
    """A stand-in for a Slurm client on PATH."""
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("#!/bin/sh\n" + script)
    (folder / name).chmod(0o755)


def slurm_sweep(folder: Path, job_id: str = "4242") -> Path:
    sweep = folder / "sweep"
    sweep.mkdir()
    (sweep / MANIFEST).write_text(json.dumps({"fingerprint": grid_fingerprint(plan()), "executor": "slurm", "jobs": {
        CELL: {"job_ids": [job_id], "output": str(sweep / "cell" / "run"), "kind": "run"}}}))
    return sweep


SQUEUE_DOWN = 'echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2; exit 1\n'
NO_ACCOUNTING = 'echo "Slurm accounting storage is disabled" >&2; exit 1\n'


def test_failing_squeue_leaves_the_cell_unknown_and_submits_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    """Today's bug: squeue failing made the live job look dead, and the cell was submitted again."""
    bin_dir = tmp_path / "bin"
    tool(bin_dir, "squeue", SQUEUE_DOWN)
    tool(bin_dir, "sacct", NO_ACCOUNTING)
    tool(bin_dir, "scontrol", "echo MaxArraySize=2\n")
    tool(bin_dir, "sbatch", f'touch "{tmp_path / "sbatch-called"}"; exit 1\n')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sweep = slurm_sweep(tmp_path)
    assert main(["sweep", "--status", str(sweep)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.split()[5:8] == ["unknown", "4242", "-"]
    assert row.endswith("squeue failed: squeue: error: Unable to contact slurm controller (connect failure); "
                        "sacct failed: Slurm accounting storage is disabled")
    lines: list[str] = []
    final = run_scheduled(plan(), tmp_path / "records", sweep, "slurm", SlurmOptions(), name="t", command="bench",
                          wait=False, log=lines.append)
    assert [s.state for s in final] == ["unknown"] and not (tmp_path / "sbatch-called").exists()
    assert json.loads((sweep / MANIFEST).read_text())["jobs"][CELL]["job_ids"] == ["4242"]
    assert lines[0] == (f"{CELL}: job 4242 state unknown (squeue failed: squeue: error: Unable to contact slurm "
                        "controller (connect failure); sacct failed: Slurm accounting storage is disabled); "
                        "not resubmitted until the scheduler answers")


def test_slurm_watch_keeps_what_it_knew(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    tool(bin_dir, "squeue", 'echo "7_0|RUNNING|None"; echo "7_1|CANCELLED|None"; echo "8|PENDING|Resources"\n')
    watch = SlurmWatch()
    watch.look(["7_0", "7_1", "8", "9"])
    assert [watch.phase(j) for j in ("7_0", "7_1", "8")] == [(LIVE, "RUNNING", "None"), (ENDED, "CANCELLED", "None"),
                                                             (LIVE, "PENDING", "Resources")]
    assert watch.phase("9") == (ENDED, "", "no longer listed by squeue")
    tool(bin_dir, "squeue", SQUEUE_DOWN)
    tool(bin_dir, "sacct", NO_ACCOUNTING)
    watch.look(["7_0", "7_1", "8", "9"])
    # An ended job stays ended; a live one becomes unknown, saying what it was last seen as.
    assert watch.phase("7_1").phase == ENDED and watch.phase("9").phase == ENDED
    assert watch.phase("7_0") == (UNKNOWN, "RUNNING", "squeue failed: squeue: error: Unable to contact slurm "
                                  "controller (connect failure); sacct failed: Slurm accounting storage is "
                                  "disabled (last seen RUNNING)")
    # With accounting, sacct answers for squeue; a job it does not list stays unknown.
    tool(bin_dir, "sacct", 'echo "7_0|CANCELLED by 1000"; echo "8|RUNNING"\n')
    watch.look(["7_0", "8", "10"])
    assert watch.phase("7_0").phase == ENDED and watch.phase("7_0").state == "CANCELLED"
    assert watch.phase("8").phase == LIVE and watch.phase("10").phase == UNKNOWN
    # squeue's answer for a lone id it no longer knows is an answer: ended.
    tool(bin_dir, "squeue", 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1\n')
    watch.look(["8"])
    assert watch.phase("8") == (ENDED, "", "no longer listed by squeue")
    missing = SlurmWatch()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    missing.look(["1"])
    assert missing.phase("1").phase == UNKNOWN and "squeue failed: No such file or directory" in missing.phase("1").reason


def test_a_local_job_is_its_pid_and_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = process_start(child.pid)
        assert start is not None and start >= process_start(os.getpid())
        assert local_phase(str(child.pid), start) == (LIVE, "RUNNING", "")
        # The same PID with another start time is another process (the system reused the PID).
        assert local_phase(str(child.pid), start + 1) == (ENDED, "", f"process gone (PID {child.pid} now another process)")
        assert local_phase(str(child.pid), None).phase == UNKNOWN
    finally:
        child.kill()
    child_start = start
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert local_phase(str(child.pid), child_start) == (ENDED, "", "process exited")  # a zombie until reaped
    child.wait()
    assert local_phase(str(child.pid), child_start).phase == ENDED


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_status_never_unpickles(tmp_path: Path, capsys) -> None:
    """Pointing --status at someone else's folder must not run their code (submitit's result pickle)."""
    import pickle

    sweep = tmp_path / "sweep"
    (sweep / "jobs").mkdir(parents=True)
    (sweep / "jobs" / "999999_0_result.pkl").write_bytes(pickle.dumps(("success", _Payload(tmp_path / "owned"))))
    (sweep / MANIFEST).write_text(json.dumps({"fingerprint": "x", "executor": "local", "jobs": {
        CELL: {"job_ids": ["999999"], "process_starts": [1], "output": str(sweep / "cell" / "run"), "kind": "run"}}}))
    assert main(["sweep", "--status", str(sweep)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert " failed " in row and row.endswith("process gone, no outcome written") and not (tmp_path / "owned").exists()


@pytest.mark.parametrize("text, expected", [
    ('{"state": "failed", "returncode": 143}', ("failed", 143)),
    ('{"state": "success", "returncode": 0}', ("success", 0)),
    ('{"state": "success"', ("unknown", None)),
    ('{"state": "done", "returncode": 0}', ("unknown", None)),
    ('["success", 0]', ("unknown", None)),
    (None, ("", None)),
])  # fmt: skip
def test_outcome_file(tmp_path: Path, text: str | None, expected: tuple) -> None:
    path = tmp_path / "1_outcome.json"
    if text is not None:
        path.write_text(text)
    assert read_outcome(path) == expected


def test_ended_job_with_an_unreadable_outcome_is_resubmittable(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "jobs").mkdir(parents=True)
    (sweep / "jobs" / "999999_outcome.json").write_text("{")
    (sweep / MANIFEST).write_text(json.dumps({"fingerprint": "x", "executor": "local", "jobs": {
        CELL: {"job_ids": ["999999"], "process_starts": [1], "output": str(sweep / "cell" / "run"), "kind": "run"}}}))
    (state,) = sweep_status(sweep)
    assert (state.state, state.message) == ("failed", "process gone, its outcome file is unreadable")


GOOD_MANIFEST = {"fingerprint": "x", "executor": "local",
                 "jobs": {CELL: {"job_ids": ["1"], "output": "/o", "kind": "run"}}}


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("[]", "expected a JSON object"),
    ('{"jobs": {}}', "'fingerprint' must be a string"),
    ('{"fingerprint": "x", "jobs": []}', "'jobs' must be an object"),
    (json.dumps({**GOOD_MANIFEST, "executor": "pbs"}), "'executor' must be one of local, slurm, got 'pbs'"),
    (json.dumps({**GOOD_MANIFEST, "jobs": {CELL: {"job_ids": "1", "output": "/o", "kind": "run"}}}),
     f"jobs[{CELL!r}].job_ids must be a non-empty list of strings"),
    (json.dumps({**GOOD_MANIFEST, "jobs": {CELL: {"job_ids": ["1"], "kind": "run"}}}),
     f"jobs[{CELL!r}] needs 'output' (a string) and 'kind' (run or latency)"),
    (json.dumps({**GOOD_MANIFEST, "jobs": {CELL: {"job_ids": ["1"], "output": "/o", "kind": "run",
                                                  "process_starts": ["x"]}}}),
     f"jobs[{CELL!r}].process_starts must be a list of integers"),
])  # fmt: skip
def test_malformed_sweep_json(tmp_path: Path, text: str, message: str, capsys) -> None:
    (tmp_path / MANIFEST).write_text(text)
    before = sorted(tmp_path.iterdir())
    assert main(["sweep", "--status", str(tmp_path)]) == 2
    assert main([*SWEEP, "--executor", "local", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == err[1]
    assert err[0].startswith(f"bench sweep: error: {tmp_path / MANIFEST}: {message}"), err[0]
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("yaml_text, message", [
    ('sbatch_lines: ["--comment=x\\ntouch /tmp/owned #"]', "sbatch_lines[0]: '--comment=x\\ntouch /tmp/owned #' "
                                                          "holds '\\n'"),
    ('sbatch_lines: ["--comment=x\\rq"]', "sbatch_lines[0]: '--comment=x\\rq' holds '\\r'"),
    ('sbatch_lines: ["--gres=gpu:1", "--comment=$(id)"]', "sbatch_lines[1]: '--comment=$(id)' holds '$'"),
    ('sbatch_lines: ["--comment=a;b"]', "sbatch_lines[0]: '--comment=a;b' holds ';'"),
    ('sbatch_lines: ["comment=x"]', "sbatch_lines[0]: 'comment=x' is not an sbatch option (--key=value or --key)"),
    ("sbatch_lines: --comment=x", "sbatch_lines: must be a list of \"--key=value\" strings, got '--comment=x'"),
    ("partition: gpu`id`", "partition: 'gpu`id`' holds '`'"),
    ("account: 'a b'", "account: 'a b' holds ' '"),
    ('qos: "high\\n#SBATCH --x"', "qos: 'high\\n#SBATCH --x' holds '\\n'"),
    ("partition: 5", "partition: must be a string, got 5"),
    ("nodes: two", "nodes: must be an integer >= 1, got 'two'"),
    ("gpus_per_job: -1", "gpus_per_job: must be an integer >= 0, got -1"),
    ("mem_gb: true", "mem_gb: must be a number of GB > 0, got True"),
])  # fmt: skip
def test_slurm_config_values_are_checked(tmp_path: Path, yaml_text: str, message: str, capsys) -> None:
    config = tmp_path / "slurm.yaml"
    config.write_text(f"slurm:\n  {yaml_text}\n")
    work = tmp_path / "work"
    assert main([*SWEEP, "--executor", "slurm", "--slurm-config", str(config), "--workdir", str(work)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bench sweep: error: --slurm-config {config}: {message}" + (
        "; newlines, spaces and shell characters are refused" if "holds" in message else "")]
    assert not work.exists()


def test_sbatch_and_partition_flags_are_checked(tmp_path: Path, capsys) -> None:
    work = tmp_path / "work"
    assert main([*SWEEP, "--executor", "slurm", "--workdir", str(work), "--sbatch=--comment=x|y"]) == 2
    assert capsys.readouterr().err.strip() == ("bench sweep: error: --sbatch[0]: '--comment=x|y' holds '|'; "
                                               "newlines, spaces and shell characters are refused")
    assert main([*SWEEP, "--executor", "slurm", "--workdir", str(work), "--partition", "a&b"]) == 2
    assert capsys.readouterr().err.strip() == ("bench sweep: error: --partition: 'a&b' holds '&'; "
                                               "newlines, spaces and shell characters are refused")
    assert not work.exists()


def test_good_sbatch_lines_reach_the_batch_script(tmp_path: Path) -> None:
    from benchmark.sweeps.executors import check_slurm_values, make_executor

    lines = ["--gres=gpu:a100:2", "--mail-user=me@example.org", "--nodelist=node[01-04]", "--exclusive"]
    options = SlurmOptions(partition="gpu", **check_slurm_values({"sbatch_lines": lines}))
    if shutil.which("sbatch") is None:
        require("slurm", "sbatch not installed (apt-get install slurm-wlm)")
    executor = make_executor("slurm", tmp_path, options)
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    expected = ["--gres=gpu:a100:2", "--mail-user=me@example.org", "--nodelist='node[01-04]'", "--exclusive",
                "--partition=gpu", "--requeue"]  # submitit quotes a value the shell would read otherwise
    assert all(f"#SBATCH {line}" in script.splitlines() for line in expected), script


# -- the hold tests interrupt runs at ---------------------------------------------------------------
def test_hold_waits_for_its_release(tmp_path: Path) -> None:
    hold = HoldAtStep(3, tmp_path)
    trainer = SimpleNamespace(global_step=2, received_sigterm=False)
    hold.on_train_batch_start(trainer, None, None, 0)
    assert not (tmp_path / MARKER).exists()  # not its step
    trainer.global_step = 3
    threading.Timer(0.3, lambda: (tmp_path / RELEASE).write_text("")).start()
    started = time.monotonic()
    hold.on_train_batch_start(trainer, None, None, 0)
    assert (tmp_path / MARKER).read_text() == "3\n" and 0.25 < time.monotonic() - started < 5
    (tmp_path / RELEASE).unlink()
    hold.on_train_batch_start(trainer, None, None, 1)  # once only (gradient accumulation repeats a step)


def test_hold_gives_way_to_sigterm(tmp_path: Path) -> None:
    trainer = SimpleNamespace(global_step=3, received_sigterm=False)
    threading.Timer(0.3, lambda: setattr(trainer, "received_sigterm", True)).start()
    started = time.monotonic()
    HoldAtStep(3, tmp_path).on_train_batch_start(trainer, None, None, 0)
    assert 0.25 < time.monotonic() - started < 5


def test_hold_applies_to_its_run_only(tmp_path: Path, monkeypatch, capsys) -> None:
    from backbones.errors import UserError

    monkeypatch.setenv("BENCH_HOLD_AT_STEP", f"3:{tmp_path / 'a'};5:{tmp_path / 'b'}")
    assert parse_holds(os.environ["BENCH_HOLD_AT_STEP"]) == {tmp_path / "a": 3, tmp_path / "b": 5}
    (hold,) = hold_from_env(tmp_path / "b", resume_from=None)
    assert (hold.step, hold.folder) == (5, tmp_path / "b")
    assert hold_from_env(tmp_path / "b", resume_from=tmp_path / "b" / "step.ckpt") == []  # a resumed run goes on
    assert hold_from_env(tmp_path / "c", resume_from=None) == []
    monkeypatch.delenv("BENCH_HOLD_AT_STEP")
    assert hold_from_env(tmp_path / "a", resume_from=None) == []
    with pytest.raises(UserError, match="BENCH_HOLD_AT_STEP: 'x:relative' is not STEP:/absolute/run/folder"):
        parse_holds("x:relative")


# -- BENCH_REQUIRE ----------------------------------------------------------------------------------
def test_require_skips_or_fails(monkeypatch) -> None:
    monkeypatch.delenv("BENCH_REQUIRE", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no slurm here"):
        require("slurm", "no slurm here")
    for value in ("all", "sshd,slurm"):
        monkeypatch.setenv("BENCH_REQUIRE", value)
        with pytest.raises(pytest.fail.Exception, match=f"slurm is required \\(BENCH_REQUIRE={value}\\) but missing: "
                                                        "no slurm here"):
            require("slurm", "no slurm here")
    monkeypatch.setenv("BENCH_REQUIRE", "sshd")
    with pytest.raises(pytest.skip.Exception):
        require("chromium", "no browser")
    monkeypatch.setenv("BENCH_REQUIRE", "slurm,docker")
    with pytest.raises(pytest.UsageError, match="BENCH_REQUIRE: unknown component\\(s\\) docker"):
        require("slurm", "x")


def test_requires_mark_fails_a_test_under_bench_require(tmp_path: Path) -> None:
    """The mark, through conftest.py's hook, in a pytest run of its own."""
    test = tmp_path / "test_marked.py"
    test.write_text("import pytest\n\n@pytest.mark.requires('adbd', 'no adbd here')\ndef test_x():\n    pass\n\n"
                    "@pytest.mark.requires('adbd', None)\ndef test_present():\n    pass\n")
    # conftest.py's two hooks, without its torch set-up (a second pytest process should start quickly).
    (tmp_path / "conftest.py").write_text(
        "from requirements_helpers import MARKER, apply_requires_marks\n\n"
        "def pytest_configure(config):\n    config.addinivalue_line('markers', MARKER)\n\n"
        "def pytest_runtest_setup(item):\n    apply_requires_marks(item)\n")
    (tmp_path / "requirements_helpers.py").write_text((Path(__file__).parent / "requirements_helpers.py").read_text())
    env = {k: v for k, v in os.environ.items() if k != "BENCH_REQUIRE"}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(test)]
    skipped = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    summary = skipped.stdout.strip().splitlines()[-1]
    assert skipped.returncode == 0 and "1 passed, 1 skipped" in summary, skipped.stdout
    failed = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env={**env, "BENCH_REQUIRE": "adbd"},
                            timeout=120)
    assert failed.returncode == 1 and "adbd is required (BENCH_REQUIRE=adbd) but missing: no adbd here" in failed.stdout
    summary = failed.stdout.strip().splitlines()[-1]
    assert "1 passed" in summary and "1 error" in summary and "skipped" not in summary, summary  # failed in setup


def test_importing_submitit_closes_no_logging_handler(tmp_path: Path) -> None:
    """submitit runs logging.config.dictConfig at import, which closes every handler the process has: in
    the test suite it closed pytest's capture file (the whole run then crashed at its end). The suite
    imports it with that step off, and leaves SUBMITIT_LOG_LEVEL as it found it."""
    script = (
        "import logging, os, sys\n"
        f"handler = logging.FileHandler({str(tmp_path / 'app.log')!r})\n"
        "logging.getLogger('app').addHandler(handler)\n"
        "from benchmark.sweeps.executors import import_submitit\n"
        "import_submitit()\n"
        "print(handler.stream is not None and not handler.stream.closed, os.environ.get('SUBMITIT_LOG_LEVEL'))\n"
        "import logging.config, importlib, submitit.core.logger\n"
        "importlib.reload(submitit.core.logger)\n"  # what a plain `import submitit` does
        "print(handler.stream is None)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SUBMITIT_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["True", "None", "True"], done.stderr[-2000:]
