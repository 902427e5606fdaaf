"""Classification end to end: datamodule on a real-layout fixture, CLI runs, records, resume, W&B, DDP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from tasks.classification.data import ImageNetDataModule, scan_split

TINY = ["--resolution", "32", "--batch-size", "4", "--num-workers", "0", "--logger", "none"]


def write_imagefolder(root: Path, classes=("n01", "n02", "n03"), per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = np.full((40, 48, 3), 60 * label, np.uint8) + rng.integers(0, 30, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.JPEG")
    return root


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "imagenet")


def test_real_imagenet_oddities_load_as_rgb(imagefolder: Path) -> None:
    odd = imagefolder / "train" / "n01"
    Image.fromarray(np.full((30, 30), 128, np.uint8), "L").save(odd / "gray.JPEG")
    Image.new("CMYK", (30, 30), (10, 200, 30, 0)).save(odd / "cmyk.JPEG")
    Image.new("RGB", (30, 30), (1, 2, 3)).save(odd / "png_named.JPEG", format="PNG")
    dm = ImageNetDataModule(str(imagefolder), resolution=32, batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.classes == ["n01", "n02", "n03"] and dm.num_classes == 3
    paths = [p for p, _ in dm.train_set.samples]
    for name in ("gray.JPEG", "cmyk.JPEG", "png_named.JPEG"):
        image, label = dm.train_set[paths.index(str(odd / name))]
        assert image.shape == (3, 32, 32) and label == 0
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, 0]
    info = dm.dataset_info()
    assert info["synthetic"] is False and info["splits"] == {"train": 15, "val": 12}


def test_class_index_is_sorted_wnid_order(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "d", classes=("n09", "n01", "n05"), per_class=1)
    classes, samples = scan_split(root, "train")
    assert classes == ["n01", "n05", "n09"]
    assert {Path(p).parent.name: label for p, label in samples} == {"n01": 0, "n05": 1, "n09": 2}


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_root", "does not exist"),
        ("empty_class", "holds no images"),
        ("val_only_class", "absent from the train split"),
    ],
)
def test_bad_dataset_layouts_are_one_line_errors(imagefolder: Path, breakage: str, message: str, capsys) -> None:
    data = imagefolder
    if breakage == "missing_root":
        data = imagefolder / "nope"
    elif breakage == "empty_class":
        (imagefolder / "train" / "n04").mkdir()
    else:
        folder = imagefolder / "val" / "n77"
        folder.mkdir()
        Image.new("RGB", (8, 8)).save(folder / "x.JPEG")
    code = main(["run", "--backbone", "mnv2", "--data", str(data), *TINY, "--output", str(imagefolder / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_corrupt_image_errors_with_path_or_is_skipped(imagefolder: Path, tmp_path: Path, capsys) -> None:
    bad = imagefolder / "val" / "n02" / "0.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    args = ["run", "--backbone", "mnv2", "--width", "0.35", "--data", str(imagefolder), *TINY, "--max-steps", "1"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "a" / "result.json").exists()
    with pytest.warns(UserWarning, match="skipping bad sample"):
        assert main([*args, "--output", str(tmp_path / "b"), "--on-bad-sample", "skip"]) == 0
    # The corrupt image was left out: top-1 is a whole number of the 11 readable images (of 12).
    top1 = json.loads((tmp_path / "b" / "result.json").read_text())["metrics"]["top1"]
    assert any(abs(top1 - 100 * k / 11) < 1e-4 for k in range(12)), top1  # float32 percent


def test_unknown_optimizer_and_logger(imagefolder: Path, capsys) -> None:
    base = ["run", "--data", str(imagefolder), *TINY, "--output", str(imagefolder / "o")]
    assert main([*base, "--optimizer", "adagradx"]) == 2
    assert "--optimizer" in capsys.readouterr().err
    assert main([*base[:-4], "--logger", "mlflowx", "--output", str(imagefolder / "o2")]) == 2
    assert "--logger" in capsys.readouterr().err


@pytest.mark.parametrize("backbone", ["mnv1", "mnv2", "mobilenet_v3_small"])
def test_cli_run_writes_a_complete_record(imagefolder: Path, tmp_path: Path, backbone: str) -> None:
    out = tmp_path / backbone
    width = ["--width", "0.25"] if backbone.startswith("mnv") else []
    assert main(["run", "--backbone", backbone, *width, "--data", str(imagefolder), *TINY, "--max-steps", "3",
                 "--output", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["kind"] == "result" and record["task"] == "classification" and record["backbone"] == backbone
    assert record["steps"] == 3 and record["num_classes"] == 3
    # Metrics of the final validation of the 12 val images (whether it learns: tests/test_learning.py).
    assert set(record["metrics"]) == {"top1", "top5"} and record["dataset"]["splits"]["val"] == 12
    assert any(abs(record["metrics"]["top1"] - 100 * k / 12) < 1e-4 for k in range(13))  # float32 percent
    assert record["params"] > 0 and record["madds"] > 0 and record["dataset"]["synthetic"] is False
    for key in ("python", "torch", "torchvision", "lightning", "cpu", "commit"):
        assert key in record["environment"]
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    image = next((imagefolder / "val" / "n02").iterdir())
    assert main(["predict", "--checkpoint", str(out / "checkpoints" / "last.ckpt"), "--out", str(out / "pics"),
                 str(image)]) == 0
    assert Image.open(out / "pics" / f"{image.stem}_pred.png").size == (48, 40)
    assert main(["predict", "--task", "classification", "--checkpoint", str(out / "nope.ckpt"), "--out",
                 str(out / "pics"), str(image)]) == 2


def test_resume_ends_with_the_same_number_of_steps(imagefolder: Path, tmp_path: Path) -> None:
    common = ["run", "--backbone", "mnv2", "--width", "0.35", "--data", str(imagefolder), *TINY, "--seed", "3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main([*common, "--max-epochs", "2", "--output", str(straight)]) == 0
    assert main([*common, "--max-epochs", "1", "--output", str(split)]) == 0
    assert main([*common, "--max-epochs", "2", "--output", str(split), "--resume"]) == 0
    first = json.loads((straight / "result.json").read_text())
    second = json.loads((split / "result.json").read_text())
    assert first["steps"] == second["steps"] == 6
    assert main([*common, "--output", str(tmp_path / "fresh"), "--resume"]) == 2


def test_synthetic_default_is_labelled_and_learnable_format(tmp_path: Path) -> None:
    dm = ImageNetDataModule(None, resolution=32, batch_size=4, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    info = dm.dataset_info()
    assert info["synthetic"] is True and "synthetic" in info["name"] and info["root"] == "synthetic"
    assert dm.num_classes == 8 and info["splits"]["train"] == 8 * 120
    root = dm.dataset_root()
    assert sorted(p.name for p in (root / "train").iterdir())[0].startswith("n00000000")


def test_wandb_offline_run_can_be_read_back(imagefolder: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    out = tmp_path / "wb"
    args = ["run", "--backbone", "mnv2", "--width", "0.35", "--data", str(imagefolder), *TINY[:-2], "--max-steps", "2"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("log_every_n_steps: 1\n")
    assert main([*args, "--logger", "wandb", "--output", str(out), "--config", str(recipe)]) == 0
    runs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    config, summary = {}, {}
    for record in read_wandb_records(runs[0]):
        kind = record.WhichOneof("record_type")
        updates = {"run": lambda r: r.run.config.update, "config": lambda r: r.config.update}
        if kind in updates:
            config.update({item.key: json.loads(item.value_json) for item in updates[kind](record)})
        if kind == "summary":
            summary.update({item.key or "/".join(item.nested_key): item.value_json for item in record.summary.update})
    assert config["backbone"] == "mnv2" and config["task"] == "classification"
    assert config["params"] > 0 and config["madds"] > 0
    assert "val/top1" in summary and "train/loss" in summary
    assert json.loads(summary["result/metrics/top1"]) == json.loads((out / "result.json").read_text())["metrics"]["top1"]


def read_wandb_records(path: Path):
    """Records of a ``.wandb`` file: LevelDB log blocks of 32 KiB holding W&B protobuf records."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer too small for a header: skip to the next block
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            pos += block - pos % block if pos % block else 0
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_two_process_ddp_matches_one_process(imagefolder: Path, tmp_path: Path, capsys) -> None:
    """The same weights evaluated by 1 and by 2 CPU processes give the same top-1 (no image twice)."""
    import shutil

    from cli_helpers import bench

    # 13 val images: PyTorch's DistributedSampler would pad one rank with a repeat; ours must not.
    Image.new("RGB", (40, 48), (250, 250, 250)).save(imagefolder / "val" / "n01" / "extra.JPEG")
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["run", "--backbone", "mnv2", "--width", "0.35", "--data", str(imagefolder), *TINY, "--batch-size", "2",
              "--max-steps", "4", "--accelerator", "cpu"]
    code, _, err = bench([*common, "--output", str(one)], capsys)  # in this process; the two ranks are processes
    assert code == 0, err[-2000:]
    shutil.copytree(one, two)
    # Resuming a finished run trains no further step and re-validates the same weights on 2 ranks.
    ddp = subprocess.run([sys.executable, "-m", "benchmark.cli", *common, "--output", str(two), "--resume", "--devices",
                          "2", "--strategy", "ddp"], capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    first = json.loads((one / "result.json").read_text())
    second = json.loads((two / "result.json").read_text())
    assert second["config"]["devices"] == 2 and second["steps"] == first["steps"] == 4
    assert second["metrics"] == first["metrics"]


def test_the_tasks_options_reach_the_datamodule_and_a_bad_one_fails_once() -> None:
    """``ClassificationTask.parse_options`` builds the augmentation's settings once; the datamodule
    takes the object, and a recipe's nonsense is one UserError line before any data is read."""
    from backbones.errors import UserError
    from tasks import get_task

    task = get_task("classification")
    cfg = {"data": None, "resolution": 32, "batch_size": 4, "num_workers": 0, "color_jitter": 0.4,
           "min_crop_scale": 0.6}
    dm = task.build_datamodule(cfg)
    assert (dm.color_jitter, dm.min_crop_scale) == (0.4, 0.6)
    with pytest.raises(UserError) as error:
        task.build_datamodule(dict(cfg, min_crop_scale=1.5))
    assert "min_crop_scale" in str(error.value) and len(str(error.value).splitlines()) == 1
