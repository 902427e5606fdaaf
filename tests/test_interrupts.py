"""Ctrl-C on `bench run` (interrupted.ckpt, one line, exit 130), the process state an in-process run
leaves behind, and a wrong --data caught before Lightning starts."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from benchmark.cli import main

BENCH = [sys.executable, "-m", "benchmark.cli"]
TINY_RUN = ["--task", "classification", "--backbone", "mnv2", "--width", "0.35", "--resolution", "64",
            "--batch-size", "4", "--num-workers", "0", "--logger", "none", "--seed", "5"]


@pytest.fixture
def one_thread_env() -> dict[str, str]:
    # Built here, not at import: conftest's BENCH_CACHE must reach the subprocess.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_ctrl_c_saves_a_checkpoint_prints_one_line_and_exits_130(tmp_path: Path, one_thread_env) -> None:
    recipe = tmp_path / "every3.yaml"
    recipe.write_text("checkpoint_every: 3\n")
    out = tmp_path / "run"
    args = [*BENCH, "run", *TINY_RUN, "--max-steps", "400", "--output", str(out), "--config", str(recipe)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=one_thread_env)
    first = out / "checkpoints" / "step.ckpt"
    deadline = time.monotonic() + 300
    while not first.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert lines[-1].startswith("bench run: interrupted: saved ") and "--resume" in lines[-1], stderr
    assert str(out / "checkpoints" / "interrupted.ckpt") in lines[-1]
    saved = torch.load(out / "checkpoints" / "interrupted.ckpt", map_location="cpu", weights_only=True)
    assert 3 <= saved["global_step"] < 400
    assert not (out / "result.json").exists()


def test_an_in_process_run_restores_what_it_changed(tmp_path: Path, monkeypatch) -> None:
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "BENCH_RUN_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the run folder defaults to ./runs
    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    threads = torch.get_num_threads()
    filters: list = []
    for _ in range(2):  # the first run imports Lightning & co., whose imports add their own filters
        filters = list(warnings.filters)
        assert main(["run", *TINY_RUN, "--max-steps", "1", "--threads", "1"]) == 0
        assert [name for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "BENCH_RUN_OUTPUT") if name in os.environ] == []
        assert signal.getsignal(signal.SIGINT) is sigint and signal.getsignal(signal.SIGTERM) is sigterm
        assert torch.get_num_threads() == threads
    assert warnings.filters == filters
    records = sorted((tmp_path / "runs").glob("*/result.json"))
    assert len(records) == 2
    # Each record names the command that made it.
    command = json.loads(records[0].read_text())["environment"]["command"]
    assert command == shlex.join(["bench", "run", *TINY_RUN, "--max-steps", "1", "--threads", "1"])


def test_missing_data_folder_is_one_line_before_lightning_starts(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["run", *TINY_RUN, "--data", str(tmp_path / "nonexistent"), "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and str(tmp_path / "nonexistent") in lines[0], lines
    assert not out.exists()
