"""Distributed evaluation: 2 CPU processes give the same detection mAP and segmentation mIoU as 1."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SETTINGS = {
    "detection": ["--resolution", "96", "--width", "0.35"],
    "segmentation": ["--resolution", "64", "--width", "0.35"],
}


@pytest.mark.parametrize("task", sorted(SETTINGS))
def test_two_process_evaluation_equals_one_process(task: str, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    common = [sys.executable, "-m", "benchmark.cli", "run", "--task", task, "--backbone", "mnv2", *SETTINGS[task],
              "--batch-size", "4", "--num-workers", "0", "--max-steps", "3", "--logger", "none",
              "--accelerator", "cpu", "--seed", "2"]
    single = subprocess.run([*common, "--output", str(one)], capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    shutil.copytree(one, two)
    # Resuming the finished run trains nothing more: the same weights are validated by 2 ranks,
    # each seeing part of the validation set; every image must be counted exactly once.
    ddp = subprocess.run([*common, "--output", str(two), "--resume", "--devices", "2", "--strategy", "ddp"],
                         capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    first = json.loads((one / "result.json").read_text())
    second = json.loads((two / "result.json").read_text())
    assert second["config"]["devices"] == 2 and second["steps"] == first["steps"] == 3
    # Equal up to float noise: the ranks run other batch sizes, so oneDNN sums in another order and
    # scores move in the 7th digit. An image counted twice or missed would move mAP/mIoU far more.
    assert first["metrics"] and flat(second["metrics"]) == pytest.approx(flat(first["metrics"]), abs=1e-3)


def flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = value
    return out
