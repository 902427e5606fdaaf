"""Evaluation presets, ImageNet class indices, val-only datasets and the bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from backbones.errors import UserError
from tasks.classification.data import ImageNetDataModule, imagenet_wnids
from tasks.evaluate import bootstrap_ci
from tasks.preprocessing import central_crop, check_preset, classification_eval_transform
from tasks.segmentation.evaluate import miou_of, pixel_accuracy_of
from tasks.segmentation.metrics import scores_from_confusion


def test_tf_inception_preset_crops_like_tf_and_scales_to_plus_minus_one() -> None:
    image = np.random.default_rng(0).integers(0, 256, (227, 300, 3), dtype=np.uint8)
    crop = central_crop(image)
    assert crop.shape == (199, 264, 3)  # offsets int((227 - 198.6) / 2) = 14, int((300 - 262.5) / 2) = 18
    assert np.array_equal(crop, image[14:213, 18:282])
    out = classification_eval_transform(160, "tf-inception")(image=image)["image"]
    assert out.shape == (3, 160, 160) and out.min() >= -1.0 and out.max() <= 1.0
    white = classification_eval_transform(64, "tf-inception")(image=np.full((80, 80, 3), 255, np.uint8))["image"]
    assert torch.allclose(white, torch.ones_like(white))
    with pytest.raises(UserError, match="--preset: 'tf-deeplab' is not a classification preset"):
        check_preset("tf-deeplab", "classification")


def _folder(root, split, names) -> None:
    for name in names:
        (root / split / name).mkdir(parents=True)
        Image.new("RGB", (40, 30), (10, 20, 30)).save(root / split / name / "a.JPEG")


def test_imagenet_subset_keeps_ilsvrc_indices_and_loads_from_val_alone(tmp_path) -> None:
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids == sorted(wnids) and wnids[0] == "n01440764"
    _folder(tmp_path, "val", [wnids[999], wnids[0], wnids[417]])
    datamodule = ImageNetDataModule(str(tmp_path), resolution=32, batch_size=2, num_workers=0, preset="tf-inception")
    datamodule.setup("validate")
    assert datamodule.num_classes == 1000 and len(datamodule.train_set) == 0
    assert sorted(label for _, label in datamodule.val_set.samples) == [0, 417, 999]


def test_other_imagefolder_data_keeps_folder_order(tmp_path) -> None:
    _folder(tmp_path, "train", ["zebra", "apple"])
    _folder(tmp_path, "val", ["apple", "zebra"])
    datamodule = ImageNetDataModule(str(tmp_path), resolution=32, batch_size=2, num_workers=0)
    datamodule.setup("fit")
    assert datamodule.classes == ["apple", "zebra"]
    assert sorted(label for _, label in datamodule.val_set.samples) == [0, 1]


def test_miou_of_matches_the_suite_metric_and_bootstrap_brackets_it() -> None:
    rng = np.random.default_rng(1)
    per_image = rng.integers(0, 50, (30, 4, 4))
    per_image[:, 3, :] = 0
    per_image[:, :, 3] = 0  # class 3 absent everywhere: left out of the mean
    total = per_image.sum(0)
    reference = scores_from_confusion(total, ["a", "b", "c", "d"])
    assert miou_of(total[None])[0] == pytest.approx(reference["miou"])
    assert pixel_accuracy_of(total[None])[0] == pytest.approx(reference["pixel_acc"])
    low, high = bootstrap_ci(per_image, miou_of, 300, seed=0)
    assert low < reference["miou"] < high
    assert (low, high) == bootstrap_ci(per_image, miou_of, 300, seed=0)
    hits = np.array([1.0] * 80 + [0.0] * 20)
    low, high = bootstrap_ci(hits, lambda sums: 100 * sums / len(hits), 1000)
    assert 70 < low < 80 < high < 90  # binomial: 80 % +- 1.96 * 4 %
