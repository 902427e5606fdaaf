"""COCO datamodule on a tiny fixture in the real layout: mapping, crowd, sizes, bad input; CLI run/predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import bench
from PIL import Image

from backbones.errors import UserError
from benchmark.cli import main
from tasks.detection.augment import read_image, train_transform
from tasks.detection.coco import AnnotationWarning, CocoDataModule, load_split
from tasks.detection.evaluation import CocoEvaluator
from tasks.detection.module import to_original_size

CATEGORIES = [{"id": 2, "name": "bicycle"}, {"id": 5, "name": "airplane"}, {"id": 9, "name": "boat"}]
TINY = ["--resolution", "64", "--batch-size", "2", "--num-workers", "0", "--logger", "none"]


def write_coco(root: Path) -> Path:
    """train: 4 images, val: 3 (one without objects, one with a crowd region); category ids 2, 5, 9."""
    rng = np.random.default_rng(0)
    (root / "annotations").mkdir(parents=True)
    for split, count in (("train", 4), ("val", 3)):
        (root / f"{split}2017").mkdir()
        images, annotations = [], []
        for i in range(count):
            image_id = 10 * i + 7
            width, height = 80 + 8 * i, 60
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"{split}2017" / f"{image_id:012d}.jpg")
            images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height})
            if i == 2 and split == "val":
                continue  # an image without objects
            for j, category in enumerate((2, 9)):
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                    "bbox": [5.0 + 30 * j, 6.0, 20.0, 25.0], "area": 500.0, "iscrowd": 0})
            if i == 1:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 5,
                                    "bbox": [40.0, 30.0, 30.0, 20.0], "area": 600.0, "iscrowd": 1})
        data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    return write_coco(tmp_path / "coco")


def edit_annotations(root: Path, split: str, change) -> Path:
    path = root / "annotations" / f"instances_{split}2017.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_contiguous_labels_crowd_and_empty_images(coco: Path) -> None:
    dm = CocoDataModule(str(coco), resolution=64, batch_size=3, num_workers=0)
    dm.setup("fit")
    assert dm.num_classes == 3 and dm.class_names() == ["bicycle", "airplane", "boat"]
    assert dm.category_ids() == [2, 5, 9]
    val = dm.splits["val"]
    assert len(val.images) == 3 and val.counts["crowd_boxes"] == 1  # crowd kept for COCOeval only
    crowd_image = next(r for r in val.images if r.image_id == 17)
    assert crowd_image.labels.tolist() == [0, 2]  # ids 2 and 9 -> labels 0 and 2; the crowd box is not trained on
    assert any(a["iscrowd"] for a in dm.val_ground_truth()["annotations"])
    batch = next(iter(dm.val_dataloader()))
    assert batch["images"].shape == (3, 3, 64, 64)
    assert batch["image_ids"].tolist() == [7, 17, 27] and batch["orig_sizes"].tolist() == [[60, 80], [60, 88], [60, 96]]
    assert [len(t["boxes"]) for t in batch["targets"]] == [2, 2, 0]
    # Resized boxes map back to the original pixels: ground truth as detections scores 100 AP.
    evaluator = CocoEvaluator(dm.val_ground_truth(), dm.category_ids())
    detections = [{**t, "scores": torch.ones(len(t["labels"]))} for t in batch["targets"]]
    evaluator.update(batch["image_ids"].tolist(), to_original_size(detections, (64, 64), batch["orig_sizes"]))
    metrics = evaluator.compute()
    assert metrics["map"] == pytest.approx(100.0) and metrics["images"] == 3
    info = dm.dataset_info()
    assert info["synthetic"] is False and info["splits"] == {"train": 4, "val": 3} and info["classes"] == 3


def test_training_augmentation_keeps_boxes_and_labels_together() -> None:
    rng = np.random.default_rng(1)
    transform = train_transform(64)
    pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 30, 40], [100, 50, 150, 110], [60, 5, 70, 15]], dtype=np.float32)
    labels = np.array([0, 1, 2])
    for _ in range(50):
        out = transform(image=pixels, bboxes=boxes, labels=labels)
        kept = np.asarray(out["bboxes"]).reshape(-1, 4)
        assert out["image"].shape == (3, 64, 64) and len(kept) == len(out["labels"])
        assert (kept >= 0).all() and (kept <= 64).all()
        widths = kept[:, 2] - kept[:, 0]
        for box, label in zip(kept, out["labels"], strict=True):
            # Boxes keep their shape class: the tall box (label 0) never turns wide and vice versa.
            if label == 0:
                assert (box[3] - box[1]) > 0 and widths.min() >= 1


def test_without_the_random_crop_boxes_are_only_flipped_and_scaled() -> None:
    rng = np.random.default_rng(2)
    transform = train_transform(64, random_crop="none")
    pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 30, 40], [100, 50, 150, 110]], dtype=np.float32)
    scaled = boxes * np.array([64 / 160, 64 / 120] * 2, dtype=np.float32)
    mirrored = scaled[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], dtype=np.float32) + np.array([64, 0, 64, 0])
    flips = set()
    for _ in range(20):
        out = transform(image=pixels, bboxes=boxes, labels=np.array([0, 1]))
        kept = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
        flipped = bool(np.allclose(kept, mirrored, atol=1e-3))
        assert flipped or np.allclose(kept, scaled, atol=1e-3), kept
        flips.add(flipped)
    assert flips == {True, False}  # half the images are mirrored, none is cropped
    with pytest.raises(UserError, match="--random-crop"):
        train_transform(64, random_crop="zoom")


def test_boxes_outside_the_image_are_clipped_and_zero_size_dropped(coco: Path) -> None:
    def change(data):
        data["annotations"][0]["bbox"] = [-10.0, 50.0, 40.0, 30.0]  # leaves the image to the left and bottom
        data["annotations"][1]["bbox"] = [10.0, 10.0, 0.0, 5.0]  # zero width

    edit_annotations(coco, "train", change)
    with pytest.warns(AnnotationWarning, match="1 box.*clipped, 1 zero-size"):
        split = load_split(coco, "train")
    first = next(r for r in split.images if r.image_id == 7)
    assert first.boxes.tolist() == [[0.0, 50.0, 30.0, 60.0]]
    assert split.counts["clipped_boxes"] == 1 and split.counts["zero_size_boxes"] == 1


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_json", "instances_train2017.json does not exist"),
        ("malformed_json", "instances_train2017.json: not valid JSON"),
        ("empty_json", "instances_train2017.json: not valid JSON"),
        ("not_coco", "instances_train2017.json: not a COCO instances file (no 'annotations' list)"),
        ("missing_image", "file"),
        ("escaping_file_name", "points outside the dataset root"),
        ("unknown_category", "annotation 1 has unknown category id 4"),
        ("unknown_image", "refers to image id 999"),
        ("bad_bbox", "is not [x, y, width, height]"),
        ("val_categories_differ", "categories differ from the train split's"),
    ],
)
def test_bad_input_is_one_clear_line(coco: Path, breakage: str, message: str, capsys) -> None:
    train_json = coco / "annotations" / "instances_train2017.json"
    if breakage == "missing_json":
        train_json.unlink()
    elif breakage == "malformed_json":
        train_json.write_text('{"images": [')
    elif breakage == "empty_json":
        train_json.write_bytes(b"")
    elif breakage == "not_coco":
        train_json.write_text('{"images": [], "categories": []}')
    elif breakage == "missing_image":
        (coco / "train2017" / "000000000017.jpg").unlink()
        message = "train2017/000000000017.jpg does not exist"
    elif breakage == "escaping_file_name":
        edit_annotations(coco, "train", lambda d: d["images"][0].update(file_name="../../etc/passwd"))
    elif breakage == "unknown_category":
        edit_annotations(coco, "train", lambda d: d["annotations"][0].update(category_id=4))
    elif breakage == "unknown_image":
        edit_annotations(coco, "train", lambda d: d["annotations"][0].update(image_id=999))
    elif breakage == "bad_bbox":
        edit_annotations(coco, "train", lambda d: d["annotations"][0].update(bbox=[1, 2, "x", 4]))
    else:
        edit_annotations(coco, "val", lambda d: d["categories"][1].update(name="car"))
    code = main(["run", "--task", "detection", "--data", str(coco), *TINY, "--output", str(coco / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "flags, flag",
    [(["--nms-iou", "1.5"], "--nms-iou"), (["--score-threshold", "-0.1"], "--score-threshold"),
     (["--max-detections", "0"], "--max-detections"), (["--head", "yolo"], "--head"),
     (["--random-crop", "zoom"], "--random-crop"), (["--threads", "0"], "--threads"),
     (["--val-every-n-epochs", "0"], "--val-every-n-epochs"), (["--head-width", "0"], "--head-width")],
)
def test_nonsense_detection_flags(coco: Path, flags: list[str], flag: str, capsys) -> None:
    # argparse rejects values outside ``choices`` itself (SystemExit): bench() returns its code too.
    code, _, err = bench(["run", "--task", "detection", "--data", str(coco), *TINY, *flags, "--output", str(coco / "out")], capsys)
    err = err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and flag in err, err


def test_missing_image_is_skipped_with_a_count_when_asked(coco: Path) -> None:
    (coco / "train2017" / "000000000017.jpg").unlink()
    with pytest.warns(UserWarning, match="skipped 1 image"):
        split = load_split(coco, "train", on_bad_sample="skip")
    assert len(split.images) == 3 and split.counts["missing_images"] == 1


def test_corrupt_image_names_the_file_or_is_skipped(coco: Path) -> None:
    bad = coco / "val2017" / "000000000017.jpg"
    bad.write_bytes(b"not a jpeg")
    dm = CocoDataModule(str(coco), resolution=64, batch_size=3, num_workers=0)
    dm.setup("validate")
    with pytest.raises(UserError, match="000000000017.jpg: unreadable image"):
        next(iter(dm.val_dataloader()))
    dm = CocoDataModule(str(coco), resolution=64, batch_size=3, num_workers=0, on_bad_sample="skip")
    dm.setup("validate")
    with pytest.warns(UserWarning, match="skipping bad sample"):
        batch = next(iter(dm.val_dataloader()))
    assert batch["image_ids"].tolist() == [7, 27] and batch["skipped"] == 1


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes"])
def test_damaged_image_names_the_file(coco: Path, damage: str) -> None:
    bad = coco / "val2017" / "000000000017.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    dm = CocoDataModule(str(coco), resolution=64, batch_size=3, num_workers=0)
    dm.setup("validate")
    with pytest.raises(UserError, match="000000000017.jpg: unreadable image"):
        next(iter(dm.val_dataloader()))


def test_exif_rotation_is_not_applied_boxes_are_on_stored_pixels(coco: Path) -> None:
    path = coco / "val2017" / "000000000007.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display"
    Image.new("RGB", (80, 60), (200, 10, 10)).save(path, exif=exif)
    assert read_image(str(path)).shape == (60, 80, 3)
    dm = CocoDataModule(str(coco), resolution=64, batch_size=3, num_workers=0)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))  # the annotation's 80x60 agrees with the stored pixels
    assert batch["orig_sizes"][0].tolist() == [60, 80]


def test_16_bit_png_image_loads_as_8_bit_rgb(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.arange(0, 60000, 100, dtype=np.uint16).reshape(20, 30)).save(path)
    pixels = read_image(str(path))
    assert pixels.dtype == np.uint8 and pixels.shape == (20, 30, 3) and pixels.min() == 0 and pixels.max() == 255


def test_image_whose_size_disagrees_with_its_annotation(coco: Path) -> None:
    Image.new("RGB", (50, 50)).save(coco / "val2017" / "000000000007.jpg")
    dm = CocoDataModule(str(coco), resolution=64, batch_size=3, num_workers=0)
    dm.setup("validate")
    with pytest.raises(UserError, match="image is 50x50 but its annotation says 80x60"):
        next(iter(dm.val_dataloader()))


def test_cli_run_writes_a_record_and_predict_draws_boxes(coco: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["run", "--task", "detection", "--backbone", "mnv2", "--width", "0.35", "--data", str(coco), *TINY,
                 "--max-steps", "2", "--logger", "wandb", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    # The run ends with validation images, predicted and true boxes drawn, and prints where they are.
    drawn = sorted((out / "validation-pictures").glob("*_pred_and_true.png"))
    assert drawn and f"boxes: {out / 'validation-pictures'}" in err
    truth = np.asarray(Image.open(drawn[0]).convert("RGB"))
    assert ((truth == 255).all(-1)).any()  # the white true boxes
    # W&B (offline in tests) got validation pictures with predicted and true boxes.
    boxes = list(out.glob("wandb/offline-run-*/files/media/metadata/boxes2D/val/examples_*.boxes2D.json"))
    groups = [json.loads(path.read_text()) for path in boxes]
    assert len(groups) >= 2 and all(g["class_labels"] == {"0": "bicycle", "1": "airplane", "2": "boat"} for g in groups)
    assert any(box["box_caption"] == "boat" for g in groups for box in g["box_data"])  # a true box, no score
    record = json.loads((out / "result.json").read_text())
    assert record["task"] == "detection" and record["num_classes"] == 3 and record["steps"] == 2
    for key in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100"):
        assert isinstance(record["metrics"][key], float)
    assert record["profile"]["head"] == "ssdlite" and record["profile"]["head_params"] > 0
    assert record["dataset"]["synthetic"] is False and record["config"]["score_threshold"] == 1e-8  # TF's
    assert record["config"]["scoring"] == "sigmoid" and record["config"]["hard_mining"] == "tf"
    image = coco / "val2017" / "000000000007.jpg"
    code = main(["predict", "--task", "detection", "--checkpoint", str(out / "checkpoints" / "last.ckpt"),
                 "--score-threshold", "0.0", "--out", str(tmp_path / "pictures"), str(image)])
    assert code == 0
    picture = Image.open(tmp_path / "pictures" / "000000000007_pred.png")
    assert picture.size == (80, 60)
    assert not np.array_equal(np.asarray(picture), np.asarray(Image.open(image).convert("RGB")))  # boxes drawn


def test_profile_cli_reports_the_head_alone(capsys) -> None:
    # --resolution given: the synthetic recipe (128 px) would otherwise apply to profile too.
    # --predictor-kernel 3: the V2 paper's Table 5 SSD (TF's configs, the default, use 1x1 predictors).
    assert main(["profile", "--task", "detection", "--backbone", "mnv2", "--head", "ssd", "--predictor-kernel", "3",
                 "--resolution", "320", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["head"] == "ssd" and result["num_classes"] == 80 and result["resolution"] == 320
    assert result["head_params"] == pytest.approx(14.8e6, rel=0.02)
