"""Distributed evaluation: 2 CPU processes give the same detection mAP and segmentation mIoU as 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import bench

SETTINGS = {
    "detection": ["--resolution", "96", "--width", "0.35"],
    "segmentation": ["--resolution", "64", "--width", "0.35"],
}


@pytest.mark.parametrize("task", sorted(SETTINGS))
def test_two_process_evaluation_equals_one_process(task: str, tmp_path: Path, capsys) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    # One image per batch and one thread per process in every run: each image goes through the same
    # kernels whichever rank runs it, so the scores agree to the bit and the metrics are equal. The
    # training and the one-process evaluation run in this process (no second start-up); the two ranks
    # are a subprocess.
    common = ["run", "--task", task, "--backbone", "mnv2", *SETTINGS[task], "--num-workers", "0", "--max-steps", "3",
              "--logger", "none", "--accelerator", "cpu", "--seed", "2", "--threads", "1"]
    code, _, err = bench([*common, "--batch-size", "4", "--output", str(one)], capsys)
    assert code == 0, err[-3000:]
    shutil.copytree(one, two)
    # Resuming the finished run trains nothing more: the same weights are validated by 1 process and
    # by 2 ranks, each rank seeing part of the validation set; every image must be counted exactly once.
    evaluate = [*common, "--batch-size", "1", "--resume"]
    code, _, err = bench([*evaluate, "--output", str(one)], capsys)
    assert code == 0, err[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "benchmark.cli", *evaluate, "--output", str(two), "--devices", "2",
                          "--strategy", "ddp"], capture_output=True, text=True, timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    first = json.loads((one / "result.json").read_text())
    second = json.loads((two / "result.json").read_text())
    assert second["config"]["devices"] == 2 and second["steps"] == first["steps"] == 3
    if task == "detection":  # every validation image evaluated exactly once over the two ranks
        assert second["metrics"]["images"] == first["metrics"]["images"] == first["dataset"]["splits"]["val"]
    assert first["metrics"] and flat(second["metrics"]) == pytest.approx(flat(first["metrics"]), abs=1e-9)


def flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = value
    return out
