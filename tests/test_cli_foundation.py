"""The foundation's command line: ``bench profile``, ``bench list`` and their one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
from functools import partial
from pathlib import Path

import pytest
import torch
import torchvision
from cli_helpers import bench

from backbones import get_entry, list_backbones
from backbones.classifier import create_classifier
from backbones.counting import count_madds, count_params
from tasks import list_tasks


def meta_madds(build, resolution: int) -> int:
    """A reference count without the arithmetic: the counter reads shapes only."""
    with torch.device("meta"):
        model = build()
    return count_madds(model, torch.empty(1, 3, resolution, resolution, device="meta"))


def profile_json(argv: list[str], capsys: pytest.CaptureFixture) -> dict:
    code, out, err = bench(["profile", "--json", *argv], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # one JSON object, nothing else on stdout
    return json.loads(lines[0])


# -- bench profile ----------------------------------------------------------------------------------
def test_profile_defaults_are_mnv2_at_224_with_1000_classes(capsys) -> None:
    """Issue 2: defaults 1000 classes, 224; torchvision's mobilenet_v2 counts."""
    result = profile_json([], capsys)
    assert type(result["params"]) is int and type(result["madds"]) is int
    assert result["backbone"] == "mnv2" and result["task"] == "classification"
    assert (result["resolution"], result["num_classes"]) == (224, 1000)
    assert (result["params"], result["madds"]) == (3_504_872, 300_774_272)


def test_profile_at_224_counts_torchvision_mobilenet_v2(capsys) -> None:
    result = profile_json(["--resolution", "224"], capsys)
    assert result["params"] == count_params(torchvision.models.mobilenet_v2()) == 3_504_872
    assert result["madds"] == meta_madds(torchvision.models.mobilenet_v2, 224) == 300_774_272


def test_profile_flags_reach_the_model(capsys) -> None:
    args = ["--backbone", "mobilenet_v2", "--width", "0.5", "--resolution", "160", "--num-classes", "10"]
    result = profile_json(args, capsys)
    reference = partial(torchvision.models.mobilenet_v2, width_mult=0.5, num_classes=10)
    assert result["backbone"] == "mnv2" and result["width"] == 0.5
    assert result["params"] == count_params(reference())
    assert result["madds"] == meta_madds(reference, 160)


def test_profile_output_stride_and_expansion_change_the_count(capsys) -> None:
    base = profile_json(["--resolution", "64"], capsys)
    dilated = profile_json(["--resolution", "64", "--output-stride", "16"], capsys)
    assert dilated["params"] == base["params"] and dilated["madds"] > base["madds"]
    assert dilated["output_stride"] == 16
    slim = profile_json(["--resolution", "64", "--expansion", "4"], capsys)
    assert slim["params"] == count_params(create_classifier("mnv2", expansion=4.0))


def test_profile_mnv1_and_a_baseline(capsys) -> None:
    mnv1 = profile_json(["--backbone", "mnv1", "--resolution", "224"], capsys)
    assert mnv1["params"] == count_params(create_classifier("mnv1"))
    assert abs(mnv1["madds"] - 569e6) <= 0.02 * 569e6  # V1 paper, Table 6
    small = profile_json(["--backbone", "mobilenet_v3_small", "--resolution", "32"], capsys)
    assert small["params"] == count_params(torchvision.models.mobilenet_v3_small())


def test_profile_human_readable(capsys) -> None:
    code, out, err = bench(["profile", "--resolution", "224"], capsys)
    assert code == 0 and not err.strip()
    assert "3,504,872" in out and "300,774,272" in out and "mnv2" in out


# -- bad input: one line naming the flag, exit 2, no traceback ----------------------------------------
BAD_INPUT = [
    (["--backbone", "mobilenet_v9"], "--backbone"),
    (["--width", "0"], "--width"),
    (["--width", "-0.5"], "--width"),
    (["--width", "wide"], "--width"),
    (["--resolution", "31"], "--resolution"),
    (["--resolution", "0"], "--resolution"),
    (["--output-stride", "4"], "--output-stride"),
    (["--output-stride", "64"], "--output-stride"),
    (["--backbone", "resnet50", "--width", "0.5"], "--width"),
    (["--backbone", "mnv1", "--expansion", "4"], "--expansion"),
    (["--expansion", "0"], "--expansion"),
    (["--num-classes", "0"], "--num-classes"),
    (["--task", "captioning"], "--task"),
]


@pytest.mark.parametrize("argv, flag", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_profile_input_is_one_line_naming_the_flag(capsys, argv: list[str], flag: str) -> None:
    code, out, err = bench(["profile", *argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert flag in lines[0] and "Traceback" not in err
    assert not out.strip()


def test_unknown_backbone_message_lists_the_known_ones(capsys) -> None:
    _, _, err = bench(["profile", "--backbone", "mobilenet_v9"], capsys)
    for name in list_backbones():
        assert name in err


# -- bench list -------------------------------------------------------------------------------------
def test_list_shows_backbones_with_options_and_tasks(capsys) -> None:
    code, out, _ = bench(["list"], capsys)
    assert code == 0
    lines = out.splitlines()
    for name in list_backbones():
        entry = get_entry(name)
        line = next((ln for ln in lines if ln.split() and ln.split()[0] == name), None)
        assert line is not None, f"{name} not listed"
        assert ", ".join(entry.options) in line
        for alias in entry.aliases:
            assert alias in line
    tasks_at = lines.index("tasks:")
    for task in list_tasks():
        assert any(ln.split() and ln.split()[0] == task for ln in lines[tasks_at:])


# -- --pretrained offline -------------------------------------------------------------------------------
def test_run_pretrained_offline_is_one_line_exit_2(capsys, monkeypatch, tmp_path: Path) -> None:
    """No network and an empty hub dir: a clear one-line error, not a traceback or a hang."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    requested = []

    def offline(url: str, *args, **kwargs) -> None:
        requested.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    # An ImageNet-shaped folder (1000 classes): images are only listed before the model is built.
    data = tmp_path / "imagenet"
    for index in range(1000):
        (data / "train" / f"n{index:08d}").mkdir(parents=True)
        (data / "train" / f"n{index:08d}" / "a.JPEG").touch()
    (data / "val" / "n00000000").mkdir(parents=True)
    (data / "val" / "n00000000" / "a.JPEG").touch()
    argv = [
        "run",
        "--backbone",
        "mnv2",
        "--pretrained",
        "torchvision",
        "--data",
        str(data),
        "--resolution",
        "32",
        "--num-workers",
        "0",
        "--logger",
        "none",
        "--output",
        str(tmp_path / "run"),
    ]
    code, _, err = bench(argv, capsys)
    assert code == 2, err
    assert requested, "the weights download was not attempted"
    errors = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "--pretrained" in errors[0], err
    assert "Traceback" not in err


# -- the installed console script ---------------------------------------------------------------------
def console_script() -> str:
    found = shutil.which("bench", path=str(Path(sys.executable).parent)) or shutil.which("bench")
    assert found, "the `bench` console script is not installed (pip install -e .)"
    return found


def test_console_script_profile_json() -> None:
    done = subprocess.run(
        [console_script(), "profile", "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["params"], result["madds"]) == (3_504_872, 300_774_272)


def test_console_script_bad_input_is_exactly_one_line() -> None:
    """The real process: nothing else (import warnings, a traceback) may reach stderr."""
    done = subprocess.run(
        [console_script(), "profile", "--resolution", "16"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--resolution" in done.stderr, done.stderr
    assert not done.stdout
