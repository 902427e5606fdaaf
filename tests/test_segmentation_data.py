"""VOC datamodule on a tiny real-layout fixture: palette masks, SBD list, augmentation, bad input, CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backbones.errors import UserError
from benchmark.cli import main
from tasks.segmentation.drawing import palette_image
from tasks.segmentation.voc import VocDataModule

TINY = [
    "--backbone",
    "mnv2",
    "--width",
    "0.35",
    "--resolution",
    "32",
    "--batch-size",
    "2",
    "--num-workers",
    "0",
    "--logger",
    "none",
]


def write_voc(root: Path, train: int = 4, val: int = 3, seed: int = 0) -> Path:
    """A tiny ROOT/VOCdevkit/VOC2012 with varied image sizes, palette masks and void borders."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    ids = {"train": [f"2007_{i:06d}" for i in range(train)], "val": [f"2008_{i:06d}" for i in range(val)]}
    for image_id in ids["train"] + ids["val"]:
        write_pair(voc, image_id, "SegmentationClass", rng)
    ids["trainval"] = ids["train"] + ids["val"]
    for split, names in ids.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def write_pair(voc: Path, image_id: str, mask_folder: str, rng, size: tuple[int, int] | None = None) -> None:
    height, width = size or (int(rng.integers(20, 40)), int(rng.integers(20, 40)))
    labels = np.zeros((height, width), np.uint8)
    label = int(rng.integers(1, 21))
    labels[4 : height - 4, 5 : width - 5] = label
    labels[3, 5 : width - 5] = 255  # a void band, as VOC draws along object edges
    pixels = (rng.integers(0, 40, (height, width, 3)) + 10 * labels[..., None] % 255).astype(np.uint8)
    Image.fromarray(pixels).save(voc / "JPEGImages" / f"{image_id}.jpg")
    palette_image(labels).save(voc / mask_folder / f"{image_id}.png")


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    return write_voc(tmp_path / "voc")


def voc_dir(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def test_masks_are_palette_indices_and_eval_keeps_each_image_size(voc_root: Path) -> None:
    mask_path = voc_dir(voc_root) / "SegmentationClass" / "2008_000000.png"
    with Image.open(mask_path) as mask:
        assert mask.mode == "P" and mask.convert("RGB").getpixel((0, 0)) == (0, 0, 0)
        indices = np.array(mask)
    dm = VocDataModule(str(voc_root), resolution=48, batch_size=3, num_workers=0)
    dm.setup("fit")
    assert dm.num_classes == 21 and dm.class_names()[15] == "person"
    image, mask = dm.val_set[0]
    assert mask.dtype == torch.long and torch.equal(mask, torch.from_numpy(indices).long())
    assert image.shape[1:] == mask.shape  # whole image at its own size
    images, masks, sizes = next(iter(dm.val_dataloader()))
    assert images.shape[0] == 3 and sizes.tolist()[0] == list(mask.shape)
    assert (masks[0, mask.shape[0] :, :] == 255).all() if mask.shape[0] < masks.shape[1] else True
    info = dm.dataset_info()
    assert (
        info["synthetic"] is False and info["name"] == "voc2012" and info["splits"] == {"train": 4, "val": 3}
    )


def test_training_crops_pad_with_the_mean_pixel_and_void(voc_root: Path) -> None:
    # Images are at most 40 px and scale at most 2x: a 96 crop always holds padding.
    dm = VocDataModule(str(voc_root), resolution=96, batch_size=2, num_workers=0)
    dm.setup("fit")
    torch.manual_seed(0)
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 96, 96) and masks.shape == (2, 96, 96) and masks.dtype == torch.long
    assert set(torch.unique(masks).tolist()) <= set(range(21)) | {255}
    # Padding goes bottom/right (TF DeepLab pads at offset 0; the flip may then move it left): the
    # last row and one outer column are padding, void in the mask and the ImageNet mean pixel in
    # the image, which normalises to ~0.
    assert (masks[:, -1, :] == 255).all() and images[:, :, -1, :].abs().max() < 0.01
    for image, mask in zip(images, masks, strict=True):
        column = -1 if (mask[:, -1] == 255).all() else 0
        assert (mask[:, column] == 255).all() and image[:, :, column].abs().max() < 0.01
    assert images.abs().amax((1, 2, 3)).min() > 0.1  # the images themselves are not flat


def test_sbd_augmented_list_is_used_when_present(voc_root: Path) -> None:
    voc = voc_dir(voc_root)
    (voc / "SegmentationClassAug").mkdir()
    (voc / "ImageSets" / "SegmentationAug").mkdir()
    rng = np.random.default_rng(1)
    aug_ids = [f"2009_{i:06d}" for i in range(5)]
    for image_id in aug_ids:
        write_pair(voc, image_id, "SegmentationClassAug", rng)
    # Community lists come as "/JPEGImages/x.jpg /SegmentationClassAug/x.png" too; a val id must not leak in.
    lines = [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in aug_ids] + ["2008_000001"]
    (voc / "ImageSets" / "SegmentationAug" / "train_aug.txt").write_text("\n".join(lines) + "\n")
    write_pair(voc, "2008_000001", "SegmentationClassAug", rng)
    dm = VocDataModule(str(voc_root), resolution=32, batch_size=2, num_workers=0)
    dm.setup("fit")
    assert dm.train_list == "ImageSets/SegmentationAug/train_aug.txt"
    assert [mask.parent.name for _, mask in dm.train_set.samples] == ["SegmentationClassAug"] * 5
    assert [image.stem for image, _ in dm.train_set.samples] == aug_ids
    assert [mask.parent.name for _, mask in dm.val_set.samples] == ["SegmentationClass"] * 3
    assert dm.dataset_info()["name"] == "voc2012+sbd"


def break_dataset(root: Path, breakage: str) -> str:
    """Damage the fixture; return the file name the error must mention."""
    voc = voc_dir(root)
    if breakage == "missing_split":
        (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
        return "val.txt"
    if breakage == "missing_image":
        (voc / "JPEGImages" / "2007_000002.jpg").unlink()
        return "2007_000002.jpg"
    target = voc / "SegmentationClass" / "2007_000001.png"
    if breakage == "mask_size":
        palette_image(np.zeros((7, 9), np.uint8)).save(target)
    elif breakage == "mask_values":
        with Image.open(target) as mask:
            labels = np.array(mask)
        labels[0, 0] = 40
        palette_image(labels).save(target)
    elif breakage == "rgb_mask":
        with Image.open(target) as mask:
            mask.convert("RGB").save(target)
    return target.name


BREAKAGES = [
    ("missing_split", "split list"),
    ("missing_image", "does not exist"),
    ("mask_size", "mask is 9x7 but its image"),
    ("mask_values", "value(s) 40 outside the 21 classes and 255"),
    ("rgb_mask", "colour image"),
]


@pytest.mark.parametrize("breakage, message", BREAKAGES)
def test_bad_inputs_are_user_errors_naming_the_file(voc_root: Path, breakage: str, message: str) -> None:
    name = break_dataset(voc_root, breakage)
    dm = VocDataModule(str(voc_root), resolution=32, batch_size=2, num_workers=0)
    with pytest.raises(UserError) as error:
        dm.setup("fit")
        for index in range(len(dm.train_set)):
            dm.train_set[index]
    assert message in str(error.value) and name in str(error.value) and "\n" not in str(error.value)


# Through the CLI: one error found while listing the data, one inside the DataLoader during training.
@pytest.mark.parametrize("breakage, message", [BREAKAGES[1], BREAKAGES[3]])
def test_bad_inputs_exit_2_with_one_line(voc_root: Path, breakage: str, message: str, capsys) -> None:
    name = break_dataset(voc_root, breakage)
    args = ["run", "--task", "segmentation", "--data", str(voc_root), *TINY, "--max-steps", "4"]
    code = main([*args, "--output", str(voc_root / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and message in err and name in err, err


@pytest.mark.parametrize(
    "damage, name, message",
    [
        ("truncated_mask", "2007_000001.png", "unreadable mask"),
        ("truncated_image", "2007_000001.jpg", "unreadable image"),
        ("zero_byte_image", "2007_000001.jpg", "unreadable image"),
    ],
)
def test_damaged_files_name_the_file(voc_root: Path, damage: str, name: str, message: str) -> None:
    voc = voc_dir(voc_root)
    path = voc / ("SegmentationClass" if name.endswith(".png") else "JPEGImages") / name
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "zero_byte_image" else data[: len(data) // 2])
    dm = VocDataModule(str(voc_root), resolution=32, batch_size=2, num_workers=0)
    dm.setup("fit")
    with pytest.raises(UserError, match=f"{name}: {message}"):
        dm.train_set[1]


def test_exif_rotation_is_not_applied_masks_are_on_stored_pixels(voc_root: Path) -> None:
    voc = voc_dir(voc_root)
    path = voc / "JPEGImages" / "2007_000001.jpg"
    with Image.open(path) as image:
        pixels = np.array(image)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display": would turn the image against its mask
    Image.fromarray(pixels).save(path, exif=exif)
    dm = VocDataModule(str(voc_root), resolution=32, batch_size=2, num_workers=0)
    dm.setup("fit")
    image, mask = dm.train_set.load(1)
    assert image.shape[:2] == mask.shape == pixels.shape[:2]


def test_corrupt_image_is_skipped_on_request(voc_root: Path) -> None:
    (voc_dir(voc_root) / "JPEGImages" / "2007_000001.jpg").write_bytes(b"not a jpeg")
    strict = VocDataModule(str(voc_root), resolution=32, batch_size=2, num_workers=0)
    strict.setup("fit")
    with pytest.raises(Exception, match="2007_000001.jpg"):
        strict.train_set[1]
    lenient = VocDataModule(str(voc_root), resolution=32, batch_size=2, num_workers=0, on_bad_sample="skip")
    lenient.setup("fit")
    with pytest.warns(UserWarning, match="skipping bad sample"):
        assert lenient.train_set[1] is None


def test_cli_run_writes_a_record_logs_masks_and_predict_draws_overlays(
    voc_root: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    out = tmp_path / "run"
    flags = [
        "--max-steps",
        "2",
        "--eval-scales",
        "0.75,1.0",
        "--eval-flip",
        "--output",
        str(out),
        "--logger",
        "wandb",
    ]
    assert main(["run", "--task", "segmentation", "--data", str(voc_root), *TINY, *flags]) == 0
    # W&B got validation pictures with predicted and true masks (written as PNG media offline).
    assert list(out.glob("wandb/offline-run-*/files/media/images/mask/val/masks_*.mask.png"))
    record = json.loads((out / "result.json").read_text())
    metrics = record["metrics"]
    assert set(metrics) == {"miou", "pixel_acc", "per_class_iou"}
    # mIoU is the mean of the classes the validation set holds (whether it learns: tests/test_learning.py).
    present = [v for v in metrics["per_class_iou"].values() if v is not None]
    assert present and abs(metrics["miou"] - sum(present) / len(present)) < 0.01
    assert len(metrics["per_class_iou"]) == 21 and "aeroplane" in metrics["per_class_iou"]
    assert record["dataset"]["synthetic"] is False and record["params"] > 0 and record["madds"] > 0
    assert record["config"]["eval_flip"] is True and record["config"]["output_stride"] == 16
    image = voc_dir(voc_root) / "JPEGImages" / "2008_000000.jpg"
    pictures = tmp_path / "pictures"
    assert (
        main(
            [
                "predict",
                "--task",
                "segmentation",
                "--checkpoint",
                str(out / "checkpoints" / "last.ckpt"),
                "--out",
                str(pictures),
                str(image),
            ]
        )
        == 0
    )
    with Image.open(pictures / "2008_000000_seg.png") as overlay, Image.open(image) as original:
        assert overlay.size == original.size
    with Image.open(pictures / "2008_000000_mask.png") as mask:
        assert mask.mode == "P" and mask.size == overlay.size


def test_synthetic_default_is_voc_layout_with_void_borders() -> None:
    dm = VocDataModule(None, resolution=64, batch_size=4, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    info = dm.dataset_info()
    assert info["synthetic"] is True and "synthetic" in info["name"] and info["root"] == "synthetic"
    assert dm.num_classes == 7 and dm.class_names()[0] == "background"
    _, mask = dm.val_set[0]
    values = set(torch.unique(mask).tolist())
    assert 255 in values and 0 in values and len(values - {0, 255}) >= 1
    sizes = {tuple(dm.val_set[i][1].shape) for i in range(5)}
    assert len(sizes) > 1  # images keep varied own sizes, as VOC's do


def test_shipped_recipes_resolve(voc_root: Path) -> None:
    from benchmark.runs.config import resolve_config
    from tasks import get_task

    task = get_task("segmentation")
    synthetic = resolve_config(task, {"backbone": "mnv2", "data": None})
    real = resolve_config(task, {"backbone": "mnv1", "data": str(voc_root)})
    assert synthetic["recipe"].endswith("segmentation_synthetic.yaml") and real["recipe"].endswith(
        "segmentation.yaml"
    )
    assert real["resolution"] == 513 and real["output_stride"] == 16 and real["aspp"] is False
    # The synthetic recipe's width applies to the MobileNets; a baseline without one still resolves,
    # while a --width the user gives it stays an error.
    assert synthetic["width"] == 0.5
    baseline = resolve_config(task, {"backbone": "mobilenet_v3_small", "data": None})
    assert baseline["width"] is None and baseline["recipe"].endswith("segmentation_synthetic.yaml")
    with pytest.raises(UserError, match="--width: backbone 'mobilenet_v3_small' does not take it"):
        resolve_config(task, {"backbone": "mobilenet_v3_small", "data": None, "width": 0.5})


def test_evaluate_callable_scores_a_fixed_input_runtime(voc_root: Path) -> None:
    """The latency gate's path: every val image padded into a square canvas; an all-background
    'runtime' scores exactly what the val masks say it should."""
    from tasks import get_task

    task = get_task("segmentation")
    calls = []

    def all_background(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        logits = torch.zeros(x.shape[0], 21, *x.shape[-2:])
        logits[:, 0] = 1.0
        return logits

    cfg = {**task.defaults(), "data": str(voc_root), "resolution": 48, "batch_size": 2, "num_workers": 0}
    metrics = task.evaluate_callable(all_background, cfg)
    assert set(calls) == {(1, 3, 48, 48)} and metrics["images"] == 3
    background = labelled = 0
    present = set()
    for image_id in ("2008_000000", "2008_000001", "2008_000002"):
        with Image.open(voc_dir(voc_root) / "SegmentationClass" / f"{image_id}.png") as mask:
            labels = np.array(mask)
        background += int((labels == 0).sum())
        labelled += int((labels != 255).sum())
        present |= set(np.unique(labels).tolist()) - {255}
    assert metrics["pixel_acc"] == pytest.approx(100 * background / labelled)
    assert metrics["miou"] == pytest.approx(100 * background / labelled / len(present))
