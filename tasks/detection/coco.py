"""COCO detection in its standard layout, read with pycocotools' conventions.

    ROOT/annotations/instances_{train,val}2017.json
    ROOT/{train,val}2017/<file_name>

Category ids (COCO: 1..90 with gaps for 80 classes) map to contiguous labels 0..C-1 in id
order and back for evaluation. Crowd annotations are not trained on; evaluation reads them from
the ground-truth JSON as COCOeval does. Images without annotations stay in both splits (they
teach "background" through the hard negatives and count in evaluation).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from backbones.errors import UserError
from tasks.base import BenchDataModule
from tasks.detection.augment import eval_transform, read_image, train_transform
from tasks.detection.options import DEFAULTS, DetectionOptions
from tasks.images import BadSampleWarning

SPLITS = ("train", "val")


class AnnotationWarning(UserWarning):
    """Boxes clipped to their image or dropped as zero-size while reading an annotation file."""


def annotation_path(root: Path, split: str) -> Path:
    return root / "annotations" / f"instances_{split}2017.json"


# -- reading and checking an annotation file ---------------------------------------------------
@dataclass
class ImageRecord:
    """One image and its trainable boxes (crowd excluded, clipped, zero-size dropped)."""

    image_id: int
    path: str
    width: int
    height: int
    boxes: np.ndarray  # [n, 4] float32 (x0, y0, x1, y1) in image pixels
    labels: np.ndarray  # [n] int64 contiguous labels


@dataclass
class CocoSplit:
    ground_truth: dict[str, Any]  # the JSON as read (area/iscrowd filled in where absent), for COCOeval
    categories: list[dict[str, Any]]  # sorted by id: index = contiguous label
    images: list[ImageRecord]
    counts: dict[str, int] = field(default_factory=dict)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_annotation_json(path: Path, split: str) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path} does not exist (expected ROOT/annotations/instances_{split}2017.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except (UnicodeDecodeError, OSError) as error:
        raise UserError(f"{path}: unreadable ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a COCO instances file (the top level must be an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise UserError(f"{path}: not a COCO instances file (no {key!r} list)")
    return data


def check_categories(path: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    seen: set[int] = set()
    for category in data["categories"]:
        if not isinstance(category, dict) or not isinstance(category.get("id"), int) or "name" not in category:
            raise UserError(f"{path}: category {category!r} needs an integer 'id' and a 'name'")
        if category["id"] in seen:
            raise UserError(f"{path}: category id {category['id']} appears twice")
        seen.add(category["id"])
    if not seen:
        raise UserError(f"{path}: 'categories' is empty")
    return sorted(data["categories"], key=lambda c: c["id"])


def checked_images(path: Path, entries: list[Any]) -> dict[int, dict[str, Any]]:
    """The file's images by id: each with a unique integer id, a file name inside the dataset root and
    a positive width and height."""
    images: dict[int, dict[str, Any]] = {}
    for image in entries:
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            raise UserError(f"{path}: image entry {str(image)[:80]} has no integer 'id'")
        image_id = image["id"]
        if image_id in images:
            raise UserError(f"{path}: image id {image_id} appears twice")
        name = image.get("file_name")
        if not isinstance(name, str) or not name:
            raise UserError(f"{path}: image {image_id} has no 'file_name'")
        relative = PurePosixPath(name.replace("\\", "/"))
        # Lexical check (symlinked image folders are fine): no absolute paths, no '..'.
        if relative.is_absolute() or ".." in relative.parts:
            raise UserError(f"{path}: image {image_id} file_name {name!r} points outside the dataset root")
        for key in ("width", "height"):
            if not isinstance(image.get(key), int) or image[key] <= 0:
                raise UserError(f"{path}: image {image_id} needs a positive integer {key!r}")
        images[image_id] = image
    return images


def training_boxes(path: Path, annotations: list[Any], images: dict[int, dict[str, Any]], label_of: dict[int, int],
                   counts: dict[str, int]) -> tuple[dict[int, list[list[float]]], dict[int, list[int]]]:  # fmt: skip
    """Each image's boxes (x0, y0, x1, y1, clipped to the image) and labels to train on: crowd regions
    and boxes under a pixel left out and counted in ``counts``; a malformed annotation is one line."""
    boxes: dict[int, list[list[float]]] = {i: [] for i in images}
    labels: dict[int, list[int]] = {i: [] for i in images}
    seen_ids: set[Any] = set()
    for ann in annotations:
        if not isinstance(ann, dict):
            raise UserError(f"{path}: annotation {str(ann)[:80]} is not an object")
        ann_id = ann.get("id")
        if ann_id in seen_ids:
            raise UserError(f"{path}: annotation id {ann_id} appears twice")
        seen_ids.add(ann_id)
        image = images.get(ann.get("image_id"))
        if image is None:
            raise UserError(f"{path}: annotation {ann_id} refers to image id {ann.get('image_id')} absent from 'images'")
        if ann.get("category_id") not in label_of:
            raise UserError(f"{path}: annotation {ann_id} has unknown category id {ann.get('category_id')}")
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
            raise UserError(f"{path}: annotation {ann_id} bbox {bbox!r} is not [x, y, width, height]")
        # COCOeval needs both; COCO files always have them, hand-made files may not.
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(bbox[2] * bbox[3]))
        if ann["iscrowd"]:
            counts["crowd_boxes"] += 1
            continue  # crowd regions are ignored in training (and matched as "ignore" by COCOeval)
        x0, y0 = bbox[0], bbox[1]
        x1, y1 = x0 + bbox[2], y0 + bbox[3]
        cx0, cy0 = min(max(x0, 0.0), image["width"]), min(max(y0, 0.0), image["height"])
        cx1, cy1 = min(max(x1, 0.0), image["width"]), min(max(y1, 0.0), image["height"])
        if cx1 - cx0 < 1.0 or cy1 - cy0 < 1.0:
            counts["zero_size_boxes"] += 1
            continue
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            counts["clipped_boxes"] += 1
        boxes[image["id"]].append([cx0, cy0, cx1, cy1])
        labels[image["id"]].append(label_of[ann["category_id"]])
    return boxes, labels


def load_split(root: Path, split: str, on_bad_sample: str = "error") -> CocoSplit:
    """Read and check ``split``'s annotation file and image files; one-line errors name the file."""
    path = annotation_path(root, split)
    data = read_annotation_json(path, split)
    categories = check_categories(path, data)
    label_of = {c["id"]: i for i, c in enumerate(categories)}
    image_dir = root / f"{split}2017"
    images = checked_images(path, data["images"])
    counts = {"clipped_boxes": 0, "zero_size_boxes": 0, "crowd_boxes": 0, "missing_images": 0}
    boxes, labels = training_boxes(path, data["annotations"], images, label_of, counts)

    records = []
    for image_id, image in images.items():
        file = image_dir / image["file_name"]
        if not file.is_file():
            if on_bad_sample != "skip":
                raise UserError(f"{path}: image {image_id} file {file} does not exist")
            counts["missing_images"] += 1
            continue
        records.append(
            ImageRecord(
                image_id,
                str(file),
                image["width"],
                image["height"],
                np.asarray(boxes[image_id], dtype=np.float32).reshape(-1, 4),
                np.asarray(labels[image_id], dtype=np.int64),
            )
        )
    if counts["clipped_boxes"] or counts["zero_size_boxes"]:
        warnings.warn(
            f"{path}: {counts['clipped_boxes']} box(es) reaching outside their image clipped, "
            f"{counts['zero_size_boxes']} zero-size box(es) dropped from training",
            AnnotationWarning,
            stacklevel=2,
        )
    if counts["missing_images"]:
        warnings.warn(f"{path}: skipped {counts['missing_images']} image(s) whose file is missing", BadSampleWarning,
                      stacklevel=2)
    if not records:
        raise UserError(f"{path}: no image of the {split} split can be read from {image_dir}")
    return CocoSplit(data, categories, records, counts)


class CocoDetectionDataset(Dataset):
    """Samples ``{"image", "boxes", "labels", "image_id", "orig_size"}``; ``None`` for a skipped file."""

    def __init__(
        self,
        images: list[ImageRecord],
        resolution: int,
        *,
        train: bool,
        on_bad_sample: str = "error",
        preset: str = "torchvision",
        random_crop: str = DEFAULTS.random_crop,
    ):
        self.images = images
        self.resolution = resolution
        self.train = train
        self.on_bad_sample = on_bad_sample
        self.transform = train_transform(resolution, random_crop) if train else eval_transform(resolution, preset)

    def __len__(self) -> int:
        return len(self.images)

    def _load(self, record: ImageRecord) -> np.ndarray | None:
        try:
            pixels = read_image(record.path)
            if pixels.shape[:2] != (record.height, record.width):
                raise UserError(
                    f"{record.path}: image is {pixels.shape[1]}x{pixels.shape[0]} but its annotation says "
                    f"{record.width}x{record.height}"
                )
            return pixels
        except UserError as error:
            if self.on_bad_sample != "skip":
                raise
            warnings.warn(f"skipping bad sample: {error}", BadSampleWarning, stacklevel=2)
            return None

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        record = self.images[index]
        pixels = self._load(record)
        if pixels is None:
            return None
        if self.train:
            out = self.transform(image=pixels, bboxes=record.boxes, labels=record.labels)
            boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
        else:
            out = self.transform(image=pixels)
            scale = np.array([self.resolution / record.width, self.resolution / record.height] * 2, dtype=np.float32)
            boxes, labels = record.boxes * scale, record.labels
        # Drop what resizing made degenerate (less than a pixel on a side).
        valid = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        return {
            "image": out["image"],
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes[valid])),
            "labels": torch.from_numpy(np.ascontiguousarray(labels[valid])),
            "image_id": record.image_id,
            "orig_size": (record.height, record.width),
        }


def collate_detection(samples: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack images; boxes stay per image. ``skipped`` counts the unreadable files left out."""
    kept = [s for s in samples if s is not None]
    if not kept:
        return None
    return {
        "images": torch.stack([s["image"] for s in kept]),
        "targets": [{"boxes": s["boxes"], "labels": s["labels"]} for s in kept],
        "image_ids": torch.tensor([s["image_id"] for s in kept], dtype=torch.int64),
        "orig_sizes": torch.tensor([s["orig_size"] for s in kept], dtype=torch.int64),
        "skipped": len(samples) - len(kept),
    }


# -- the datamodule ------------------------------------------------------------------------------
class CocoDataModule(BenchDataModule):
    """COCO 2017 (or any dataset in its layout); ``root=None`` means the embedded synthetic set."""

    def __init__(
        self,
        root: str | None,
        *,
        resolution: int = 320,
        batch_size: int = 32,
        num_workers: int = 2,
        on_bad_sample: str = "error",
        preset: str = "torchvision",
        options: DetectionOptions = DEFAULTS,
    ) -> None:
        super().__init__(
            root, resolution=resolution, batch_size=batch_size, num_workers=num_workers, on_bad_sample=on_bad_sample
        )
        self.preset = preset
        # The task's settings: the training crop, and what the evaluator post-processes with (it sees no config).
        self.options = options
        self.splits: dict[str, CocoSplit] = {}
        self.categories: list[dict[str, Any]] = []

    @classmethod
    def from_config(cls, cfg: dict[str, Any], options: DetectionOptions = DEFAULTS) -> CocoDataModule:
        """The run config's data settings with the task's ``options`` (parsed once by the task)."""
        from tasks.preprocessing import check_preset

        return cls(**cls.config_kwargs(cfg), preset=check_preset(cfg.get("preset"), "detection"), options=options)

    def synthetic_root(self) -> Path:
        from tasks.detection.synthetic_coco import synthetic_coco

        return synthetic_coco()

    def setup(self, stage: str | None = None) -> None:
        root = self.dataset_root()
        wanted = ("train", "val") if stage in (None, "fit") else ("val",)
        for split in wanted:
            if split not in self.splits:
                self.splits[split] = load_split(root, split, self.on_bad_sample)
        self.categories = self.splits["val"].categories
        if "train" in self.splits:
            train_ids = [(c["id"], c["name"]) for c in self.splits["train"].categories]
            if train_ids != [(c["id"], c["name"]) for c in self.categories]:
                raise UserError(f"{annotation_path(root, 'val')}: categories differ from the train split's")
        self.num_classes = len(self.categories)

    def dataset(self, split: str) -> CocoDetectionDataset:
        return CocoDetectionDataset(
            self.splits[split].images,
            self.resolution,
            train=split == "train",
            on_bad_sample=self.on_bad_sample,
            preset=self.preset,
            random_crop=self.options.random_crop,
        )

    def _loader(self, split: str) -> DataLoader:
        return self.loader(self.dataset(split), train=split == "train", collate_fn=collate_detection)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    # -- what evaluation and records need --------------------------------------------------------
    def val_ground_truth(self) -> dict[str, Any]:
        return self.splits["val"].ground_truth

    def category_ids(self) -> list[int]:
        """COCO category id of each contiguous label."""
        return [c["id"] for c in self.categories]

    def class_names(self) -> list[str]:
        return [str(c["name"]) for c in self.categories]

    def dataset_info(self) -> dict[str, Any]:
        return {
            "name": "synthetic-shapes (COCO format)" if self.synthetic else "coco",
            "root": "synthetic" if self.synthetic else str(Path(self.root).resolve()),
            "synthetic": self.synthetic,
            "splits": {name: len(split.images) for name, split in self.splits.items()},
            "classes": self.num_classes,
            "annotation_fixes": {name: split.counts for name, split in self.splits.items()},
        }
