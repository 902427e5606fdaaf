"""Reliability: pre-emption and kills for every task, concurrent runs, bad files, safe loading, CLI values."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import bench
from PIL import Image
from test_classification import TINY, write_imagefolder

from backbones.errors import UserError
from benchmark.cli import main
from benchmark.runs.hold import MARKER
from benchmark.runs.records import read_record, write_json_atomic
from tasks.images import load_rgb

BENCH = [sys.executable, "-m", "benchmark.cli"]


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "imagenet", per_class=8)


# -- files a loader meets -------------------------------------------------------------------------
def test_zero_byte_image_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.JPEG"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match=str(empty)):
        load_rgb(empty)


def test_truncated_jpeg_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(UserError, match="unreadable image"):
        load_rgb(path)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, exif=exif)
    assert load_rgb(path).shape == (40, 20, 3)


def test_16_bit_png_loads_as_8_bit_rgb(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)).save(path)
    pixels = load_rgb(path)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8 and pixels.max() == 255


def test_record_with_wrong_schema_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"schema_version": 999, "kind": "result", "task": "x", "backbone": "y"}))
    with pytest.raises(UserError, match=f"{bad}: schema_version 999"):
        read_record(bad)
    bad.write_text("{not json")
    with pytest.raises(UserError, match=f"{bad}: not valid JSON"):
        read_record(bad)


def test_atomic_write_keeps_the_old_file_when_serialisation_fails(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_json_atomic(path, {"a": 1})

    class Unserialisable:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_json_atomic(path, {"a": Unserialisable()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--lr", "-1"], "--lr"),
        (["--precision", "float3"], "--precision"),
        (["--devices", "many"], "--devices"),
        (["--max-epochs", "-7"], "--max-epochs"),
        (["--resolution", "8"], "--resolution"),
        (["--width", "-1"], "--width"),
        (["--max-steps", "abc"], "--max-steps"),
        (["--on-bad-sample", "ignore"], "--on-bad-sample"),
    ],
)
def test_nonsense_cli_values(flags: list[str], flag: str, tmp_path: Path, capsys) -> None:
    code, _, err = bench(["run", *TINY, "--output", str(tmp_path / "o"), *flags], capsys)  # argparse's own rejections too
    assert code == 2 and flag in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o" / "result.json").exists()


def test_one_image_per_batch_in_training_names_the_batch_size() -> None:
    from benchmark.runs.training import translate_runtime_errors

    layer = torch.nn.BatchNorm2d(4).train()
    with pytest.raises(UserError, match="--batch-size 1: batch norm needs at least 2 images"):
        with translate_runtime_errors({"batch_size": 1, "output": "o", "num_workers": 0}):
            layer(torch.zeros(1, 4, 1, 1))


# -- safe loading -----------------------------------------------------------------------------------
class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path: Path, capsys) -> None:
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "bench_config": {"task": "classification"}, "x": _Payload()}, evil)
    assert main(["predict", "--checkpoint", str(evil), "--out", str(tmp_path), str(evil)]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and "pwned" not in err


def test_recipe_yaml_is_loaded_safely(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    marker = tmp_path / "marker"
    recipe.write_text(f'lr: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert main(["profile", "--config", str(recipe)]) == 2
    assert "not valid YAML" in capsys.readouterr().err and not marker.exists()


# -- faults -------------------------------------------------------------------------------------------
def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "process ended"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


# Every task on its embedded data: 12 steps of 4 images, a checkpoint every 3, bit-reproducible
# (deterministic algorithms, one thread, no workers, fixed seed). Only the run that is killed is a
# process of its own; the uninterrupted and the resumed runs are in-process calls of the same CLI.
EMBEDDED = {
    "classification": ["--resolution", "64", "--width", "0.35", "--batch-size", "4"],
    "detection": ["--resolution", "96", "--width", "0.35", "--batch-size", "4"],
    "segmentation": ["--resolution", "64", "--width", "0.35", "--batch-size", "4"],
}
RECIPE = "checkpoint_every: 3\ndeterministic: true\n"


@pytest.fixture(scope="module")
def one_thread() -> dict[str, str]:
    """The runs' environment, built after conftest.py set BENCH_CACHE (a copy made at import would send
    their datasets to ~/.cache); nothing an earlier in-process run left behind (BENCH_RUN_OUTPUT, PL_*)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BENCH_RUN_OUTPUT", "BENCH_HOLD_AT_STEP") and not k.startswith("PL_")}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _embedded_args(task: str, out: Path, recipe: Path) -> list[str]:
    return ["run", "--task", task, "--backbone", "mnv2", *EMBEDDED[task], "--max-steps", "12", "--threads", "1",
            "--num-workers", "0", "--logger", "none", "--seed", "5", "--output", str(out), "--config", str(recipe)]


def _final_state(run: Path) -> dict[str, torch.Tensor]:
    """Model weights and buffers after the last step (``step.ckpt`` is written at step 12 = 4 x 3)."""
    checkpoint = torch.load(run / "checkpoints" / "step.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 12
    return checkpoint["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A task's run without a kill, done once per task for both signals: its record and its run folder."""
    done: dict[str, tuple[dict, Path]] = {}

    def result(task: str) -> tuple[dict, Path]:
        if task not in done:
            folder = tmp_path_factory.mktemp(f"uninterrupted-{task}")
            recipe = folder / "every3.yaml"
            recipe.write_text(RECIPE)
            assert main(_embedded_args(task, folder / "run", recipe)) == 0
            done[task] = json.loads((folder / "run" / "result.json").read_text()), folder / "run"
        return done[task]

    return result


# SIGTERM stops each task within an epoch (its data position is the task's own loader); a
# SIGKILL falls back to the last periodic checkpoint, which is the same code for every task, so one
# task covers it.
KILLS = [(task, signal.SIGTERM) for task in sorted(EMBEDDED)] + [("classification", signal.SIGKILL)]


@pytest.mark.parametrize("task, sig", KILLS)
def test_killed_run_resumes_like_an_uninterrupted_one(task: str, sig: int, uninterrupted, tmp_path: Path,
                                                      one_thread: dict[str, str], capsys) -> None:
    """The resumed run ends with the very weights of the uninterrupted one: same data order from the
    checkpointed position, same augmentation and dropout draws, restored model/optimizer/schedule.
    (Losing any of them changes every weight by far more than the tolerance; see tasks/resumable.py.)"""
    recipe = tmp_path / "every3.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "run"
    # The run waits at step 3, after its step-3 checkpoint (benchmark/runs/hold.py): the signal lands there.
    held = {**one_thread, "BENCH_HOLD_AT_STEP": f"3:{out}"}
    proc = subprocess.Popen([*BENCH, *_embedded_args(task, out, recipe)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=held)
    _wait_for(out / MARKER, proc, timeout=300)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "--resume" in stderr and "Traceback" not in stderr
        assert (out / "checkpoints" / "interrupted.ckpt").is_file()
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (out / "result.json").exists()
    code, _, err = bench([*_embedded_args(task, out, recipe), "--resume"], capsys)
    assert code == 0, err[-2000:]
    record = json.loads((out / "result.json").read_text())
    reference, reference_run = uninterrupted(task)
    assert record["steps"] == reference["steps"] == 12 and reference["resumed_from_step"] is None
    # SIGKILL: from the step-3 checkpoint; SIGTERM: Lightning finished step 4, then saved interrupted.ckpt.
    assert record["resumed_from_step"] == (4 if sig == signal.SIGTERM else 3)
    expected, got = _final_state(reference_run), _final_state(out)
    assert expected.keys() == got.keys()
    differ = {name: (got[name].double() - expected[name].double()).abs().max().item()
              for name in expected if not torch.equal(got[name], expected[name])}
    assert not differ, f"{len(differ)} of {len(expected)} tensors differ, e.g. {sorted(differ.items())[:3]}"
    assert record["metrics"] == reference["metrics"]


def test_concurrent_runs_write_separate_complete_records(imagefolder: Path, tmp_path: Path) -> None:
    args = [*BENCH, "run", "--backbone", "mnv2", "--width", "0.35", "--data", str(imagefolder), *TINY,
            "--max-steps", "2"]
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    records = sorted((tmp_path / "runs").glob("*/result.json"))
    assert len(records) == 2
    for path in records:
        assert read_record(path)["steps"] == 2
