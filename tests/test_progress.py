"""The progress display (tasks.progress): a bar on a terminal, one line per stage in logs when asked,
nothing with --quiet, and never on stdout (a command's --json stays JSON)."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from tasks import get_task
from tasks.classification.data import ImageNetDataModule
from tasks.evaluate import evaluate
from tasks.progress import configure, stage, track


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def default_progress():
    configure()
    yield
    configure()


def test_a_stage_draws_a_bar_on_a_terminal_and_erases_it(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert configure() == "auto"
    assert list(track(range(4), "evaluate classification", unit="images")) == [0, 1, 2, 3]
    shown = terminal.getvalue()
    assert "evaluate classification" in shown and "4/4" in shown and "images" in shown
    assert "\x1b[" in shown  # cursor control: the bar is redrawn in place, then erased


@pytest.mark.parametrize("flags", [{"quiet": True}, {}])
def test_quiet_or_no_terminal_writes_nothing(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, flags) -> None:
    """--quiet on a terminal; no flag where stderr is not a terminal (capsys' stderr is not). capsys comes
    first: monkeypatch, torn down after it, would otherwise put capsys' closed stream back as sys.stderr."""
    if flags:
        monkeypatch.setattr(sys, "stderr", FakeTerminal())
    configure(**flags)
    with stage("export tflite"):
        pass
    assert list(track([1, 2], "evaluate", unit="images")) == [1, 2]
    assert sys.stderr.getvalue() == "" if flags else capsys.readouterr() == ("", "")


def test_progress_without_a_terminal_writes_one_line_per_finished_stage(capsys: pytest.CaptureFixture) -> None:
    assert configure(progress=True) == "lines"
    for _ in track([torch.zeros(3, 1), torch.zeros(2, 1)], "evaluate", total=5, unit="images", count=len):
        pass
    with stage("export tflite int8"):
        pass
    with pytest.raises(KeyboardInterrupt), stage("latency onnxruntime", total=3, unit="runs") as running:
        running.advance()
        raise KeyboardInterrupt
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"evaluate: 5 images in \d+\.\d s \(\d+\.\d images/s\)", lines[0])
    assert re.fullmatch(r"export tflite int8: \d+\.\d s", lines[1])
    assert re.fullmatch(r"latency onnxruntime: 1 of 3 runs in \d+\.\d s \(\d+\.\d runs/s\), stopped", lines[2])


def test_evaluation_counts_its_images(tmp_path, capsys: pytest.CaptureFixture) -> None:
    """Every task's evaluator reads the val loader through ``tasks.evaluate``: its images are counted."""
    for name in ("apple", "pear"):
        for index in range(3):
            (tmp_path / "val" / name).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (40, 30), (10 * index, 20, 30)).save(tmp_path / "val" / name / f"{index}.JPEG")
    datamodule = ImageNetDataModule(str(tmp_path), resolution=32, batch_size=4, num_workers=0)
    configure(progress=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    result = evaluate(get_task("classification"), model, datamodule, bootstrap=10)
    assert result.images == 6
    assert re.fullmatch(r"evaluate classification: 6 images in \d+\.\d s \(\d+\.\d images/s\)\n", capsys.readouterr().err)


TINY = ["--task", "classification", "--backbone", "mnv2", "--width", "0.35", "--resolution", "64", "--num-classes", "8",
        "--tier", "quick", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "3", "--min-seconds", "0",
        "--runtime", "eager", "--accuracy-images", "0", "--threads", "1"]


@pytest.mark.parametrize("flag", ["--progress", "--quiet"])
def test_latency_json_stays_json(tmp_path, capsys: pytest.CaptureFixture, flag: str) -> None:
    """``bench latency --json``: stdout is the JSON list alone; with --progress stderr gets one line
    for the runtime, with --quiet none."""
    from benchmark.cli import main

    assert main(["latency", *TINY, "--json", flag, "--output", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert [item["runtime"] for item in json.loads(out)] == ["eager"]
    stages = [line for line in err.splitlines() if line.startswith("latency eager: ")]
    assert len(stages) == (1 if flag == "--progress" else 0)


def test_quiet_and_progress_exclude_each_other(capsys: pytest.CaptureFixture) -> None:
    from benchmark.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["latency", *TINY, "--quiet", "--progress"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == "bench latency: error: argument --progress: not allowed with argument --quiet"
