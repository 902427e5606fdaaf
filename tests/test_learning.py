"""Training learns: a short run on each task's embedded data clearly beats chance and an untrained
model. A broken loss, label mapping, box coding or decoder leaves these numbers at chance level,
which the resume tests (two runs compared with each other) cannot see.

Bounds were set from measured runs (seed 1, one thread, 2-core AMD EPYC under load from other jobs;
the numbers do not depend on speed):
- classification, 8 classes (chance 12.5 %): top-1 55.8 % after 120 steps; bound 25 % (2x chance);
- segmentation, 6 classes + background: untrained mIoU 0.27 %, 10.99 % after 60 steps; bound 3 %;
- detection, 5 classes, 64 px: untrained AP50 0.00 %, 1.50 % after 200 steps (1.98 % after 300 at
  96 px); bound 0.5 %. The demo recipe reaches 35-51 % in 1000 steps; 200 fit in a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.runs.records import read_record

COMMON = ["--backbone", "mnv2", "--num-workers", "0", "--logger", "none", "--seed", "1", "--threads", "1"]
# task: (recipe flags, metric, bound)
LEARNING = {
    "classification": (["--config", "configs/classification_synthetic.yaml", "--width", "0.35", "--resolution", "64",
                        "--optimizer", "adamw", "--lr", "0.005", "--max-steps", "120"], "top1", 25.0),
    "segmentation": (["--config", "configs/segmentation_synthetic.yaml", "--resolution", "64", "--max-steps", "60"],
                     "miou", 3.0),
    "detection": (["--config", "configs/detection_synthetic.yaml", "--resolution", "64", "--max-steps", "200",
                   "--val-every-n-epochs", "100"], "map_50", 0.5),
}
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("task", sorted(LEARNING))
def test_a_short_run_clearly_beats_chance(task: str, tmp_path: Path, monkeypatch) -> None:
    flags, metric, bound = LEARNING[task]
    monkeypatch.chdir(REPO)  # the recipes' relative paths
    out = tmp_path / "run"
    assert main(["run", "--task", task, *COMMON, *flags, "--output", str(out)]) == 0
    value = read_record(out / "result.json")["metrics"][metric]
    assert value >= bound, f"{task}: {metric} {value:.2f} after a short run; it learns to {bound}+ when training works"
