"""ImageNet in its standard layout: ROOT/{train,val}/<wnid>/*.JPEG, class index = sorted wnid.

When every class folder is an ILSVRC-2012 wnid, a class's index is its position among all 1000
sorted wnids (``imagenet_synsets.txt``, copied from timm), even if the folder holds only some of
them: pretrained and imported heads then line up. Other ImageFolder data (the embedded synthetic
set) index their own folders in sorted order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import albumentations as A
import torch
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, Dataset

from backbones.errors import UserError
from tasks.base import BenchDataModule, Config, skip_none_collate
from tasks.classification.options import DEFAULTS, ClassificationOptions
from tasks.images import IMAGE_EXTENSIONS, load_rgb_or_skip
from tasks.preprocessing import check_preset, classification_eval_transform, mean_std

SYNSETS_FILE = Path(__file__).with_name("imagenet_synsets.txt")


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids in sorted order (class index = position)."""
    return SYNSETS_FILE.read_text().split()


def class_list(found: list[str]) -> list[str]:
    """All 1000 ImageNet wnids when every folder is one of them, else the folders themselves."""
    wnids = imagenet_wnids()
    return wnids if set(found) <= set(wnids) else found



def scan_split(root: Path, split: str, classes: list[str] | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """List ``(path, label)`` of one split; classes come from the train split (sorted wnids)."""
    folder = root / split
    if not folder.is_dir():
        raise UserError(f"--data: {folder} does not exist (expected ROOT/{split}/<class>/*.JPEG)")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not found:
        raise UserError(f"--data: {folder} has no class folders")
    if classes is None:
        classes = class_list(found)
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise UserError(f"--data: {folder / extra[0]} is a {split} class absent from the train split")
    index = {name: i for i, name in enumerate(classes)}
    samples: list[tuple[str, int]] = []
    for name in found:
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise UserError(f"--data: class folder {folder / name} holds no images")
        samples.extend((str(p), index[name]) for p in files)
    return classes, samples


class ImageFolderDataset(Dataset):
    def __init__(self, samples: list[tuple[str, int]], transform: A.Compose, on_bad_sample: str = "error") -> None:
        self.samples = samples
        self.transform = transform
        self.on_bad_sample = on_bad_sample

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        path, label = self.samples[index]
        image = load_rgb_or_skip(path, self.on_bad_sample)
        if image is None:
            return None
        return self.transform(image=image)["image"], label


def train_transform(
    resolution: int, color_jitter: float = DEFAULTS.color_jitter, min_crop_scale: float = DEFAULTS.min_crop_scale,
    preset: str = "torchvision",
) -> A.Compose:
    ops: list[Any] = [
        A.RandomResizedCrop(size=(resolution, resolution), scale=(min_crop_scale, 1.0)),
        A.HorizontalFlip(),
    ]
    if color_jitter > 0:
        ops.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, hue=0.0))
    return A.Compose([*ops, A.Normalize(*mean_std(preset)), ToTensorV2()])


def eval_transform(resolution: int, preset: str = "torchvision") -> A.Compose:
    """The evaluation transform of a preset (``tasks.preprocessing``); default torchvision's."""
    return classification_eval_transform(resolution, preset)


class ImageNetDataModule(BenchDataModule):
    """ImageNet (or any ImageFolder dataset); ``root=None`` means the embedded synthetic set."""

    def __init__(
        self,
        root: str | None,
        *,
        resolution: int = 224,
        batch_size: int = 256,
        num_workers: int = 4,
        color_jitter: float = DEFAULTS.color_jitter,
        min_crop_scale: float = DEFAULTS.min_crop_scale,
        on_bad_sample: str = "error",
        preset: str = "torchvision",
    ) -> None:
        super().__init__(
            root, resolution=resolution, batch_size=batch_size, num_workers=num_workers, on_bad_sample=on_bad_sample
        )
        self.color_jitter = color_jitter
        self.min_crop_scale = min_crop_scale
        self.preset = check_preset(preset, "classification")
        self.classes: list[str] = []

    @classmethod
    def from_config(cls, cfg: Config, options: ClassificationOptions = DEFAULTS) -> ImageNetDataModule:
        """The run config's data settings with the task's ``options`` (its training augmentation)."""
        return cls(
            **cls.config_kwargs(cfg),
            color_jitter=options.color_jitter,
            min_crop_scale=options.min_crop_scale,
            preset=cfg.get("preset") or "torchvision",
        )

    def synthetic_root(self) -> Path:
        from tasks.classification.synthetic import synthetic_imagefolder

        return synthetic_imagefolder()

    def setup(self, stage: str | None = None) -> None:
        if self.classes:
            return
        root = self.dataset_root()
        if (root / "train").is_dir() or stage == "fit":
            self.classes, train = scan_split(root, "train")
            _, val = scan_split(root, "val", self.classes)
        else:  # a val split alone (e.g. ImageNet val only) is enough to evaluate
            self.classes, val = scan_split(root, "val")
            train = []
        self.num_classes = len(self.classes)
        self.train_set = ImageFolderDataset(
            train, train_transform(self.resolution, self.color_jitter, self.min_crop_scale, self.preset), self.on_bad_sample
        )
        self.val_set = ImageFolderDataset(val, eval_transform(self.resolution, self.preset), self.on_bad_sample)

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.train_set, train=True, collate_fn=skip_none_collate)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.val_set, train=False, collate_fn=skip_none_collate)

    def dataset_info(self) -> dict[str, Any]:
        return {
            "name": "synthetic-shapes (ImageFolder)" if self.synthetic else "imagenet",
            "root": "synthetic" if self.synthetic else str(Path(self.root).resolve()),
            "synthetic": self.synthetic,
            "splits": {"train": len(self.train_set), "val": len(self.val_set)},
            "classes": len(self.classes),
            "preset": self.preset,
        }

    def class_names(self) -> list[str]:
        return list(self.classes)
