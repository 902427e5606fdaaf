"""PASCAL VOC 2012 segmentation in its own layout, with the SBD-augmented training set when present.

``ROOT/VOCdevkit/VOC2012/`` holds ``JPEGImages/<id>.jpg``, palette PNGs ``SegmentationClass/<id>.png``
(pixel = class index, 255 = void) and ``ImageSets/Segmentation/{train,val,trainval}.txt``. The
DeepLab community adds SBD as ``SegmentationClassAug/<id>.png`` (grayscale class indices) with
the list ``ImageSets/SegmentationAug/train_aug.txt`` (10,582 images); when both are there, training
uses them. An optional ``class_names.txt`` (one name a line, background first) replaces the 21
VOC names, so any dataset in this layout can be used (the embedded synthetic set has one).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from backbones.errors import UserError
from tasks.base import BenchDataModule
from tasks.images import BadSampleWarning, load_rgb
from tasks.preprocessing import check_preset, mean_pixel, normalize
from tasks.segmentation.labels import VOC_CLASSES, VOID

# Where DeepLab-style SBD conversions put the augmented training list, most common first.
AUG_LISTS = ("ImageSets/SegmentationAug/train_aug.txt", "ImageSets/Segmentation/train_aug.txt")


def find_voc_root(root: Path) -> Path:
    """``ROOT/VOCdevkit/VOC2012`` (also accepted: ``ROOT/VOC2012`` or the VOC2012 folder itself)."""
    for candidate in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    if not root.is_dir():
        raise UserError(f"--data: {root} does not exist or is not a folder")
    raise UserError(
        f"--data: {root / 'VOCdevkit' / 'VOC2012' / 'JPEGImages'} does not exist (expected the VOC 2012 layout)"
    )


def read_split(path: Path) -> list[str]:
    """Image ids of a split list; also reads ``/JPEGImages/x.jpg /SegmentationClassAug/x.png`` lines."""
    if not path.is_file():
        raise UserError(f"--data: split list {path} does not exist")
    ids = [Path(line.split()[0]).stem for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise UserError(f"--data: split list {path} is empty")
    return ids


def sample_paths(voc: Path, ids: list[str], mask_folder: str) -> list[tuple[Path, Path]]:
    """``(image, mask)`` per id; a missing file is an error naming it (checked before training starts)."""
    samples = [(voc / "JPEGImages" / f"{i}.jpg", voc / mask_folder / f"{i}.png") for i in ids]
    for image, mask in samples:
        for path in (image, mask):
            if not path.is_file():
                kind = "image" if path is image else "mask"
                raise UserError(f"--data: {kind} {path} does not exist (listed in the split)")
    return samples


def load_mask(path: Path) -> np.ndarray:
    """Class indices of a mask PNG: the palette index of a VOC palette PNG, or the gray value."""
    try:
        with Image.open(path) as mask:
            if mask.mode in ("RGB", "RGBA"):
                raise UserError(
                    f"{path}: mask is an {mask.mode} colour image; expected class indices (palette or grayscale PNG)"
                )
            return np.array(mask)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path}: unreadable mask ({reason})") from None


def check_mask(
    mask: np.ndarray, image: np.ndarray, mask_path: Path, image_path: Path, num_classes: int
) -> None:
    if mask.shape[:2] != image.shape[:2]:
        raise UserError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path.name} is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    values = np.unique(mask)
    bad = values[(values >= num_classes) & (values != VOID)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:5])
        raise UserError(
            f"{mask_path}: mask holds value(s) {shown} outside the {num_classes} classes and {VOID} (void)"
        )


class VocSegmentation(Dataset):
    """Image/mask pairs; with ``on_bad_sample="skip"`` a bad pair is ``None`` (dropped by the collate)."""

    def __init__(
        self,
        samples: list[tuple[Path, Path]],
        transform: A.Compose,
        num_classes: int,
        on_bad_sample: str = "error",
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.num_classes = num_classes
        self.on_bad_sample = on_bad_sample

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The checked image (HxWx3 uint8) and mask (HxW class indices) before any transform."""
        image_path, mask_path = self.samples[index]
        image = load_rgb(image_path, exif_rotation=False)  # masks are drawn on the stored pixels
        mask = load_mask(mask_path)
        check_mask(mask, image, mask_path, image_path, self.num_classes)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        try:
            image, mask = self.load(index)
        except UserError as error:
            if self.on_bad_sample != "skip":
                raise
            warnings.warn(f"skipping bad sample: {error}", BadSampleWarning, stacklevel=2)
            return None
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"].long()


def train_transform(crop: int, preset: str = "torchvision") -> A.Compose:
    """DeepLab's training augmentation: random scale 0.5-2.0, pad to the crop with the mean pixel
    (void label), random crop, left-right flip (TF DeepLab ``input_preprocess``)."""
    return A.Compose(
        [
            A.RandomScale(scale_limit=(-0.5, 1.0), p=1.0),  # factor 1 + U(-0.5, 1.0)
            A.PadIfNeeded(
                crop,
                crop,
                position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=mean_pixel(preset),
                fill_mask=VOID,
            ),
            A.RandomCrop(crop, crop),
            A.HorizontalFlip(),
            normalize(preset),
            ToTensorV2(),
        ]
    )


def eval_transform(preset: str = "torchvision") -> A.Compose:
    """Whole images at their own size; padding happens at inference (``inference.segment``)."""
    return A.Compose([normalize(preset), ToTensorV2()])


def train_collate(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    kept = [item for item in batch if item is not None]
    if not kept:
        return None
    return torch.stack([image for image, _ in kept]), torch.stack([mask for _, mask in kept])


def pad_collate(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Images of different sizes in one batch: pad to the largest (image 0 = mean, mask void) and
    keep each image's own size, so inference can run every image at its own size."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return None
    height = max(image.shape[1] for image, _ in kept)
    width = max(image.shape[2] for image, _ in kept)
    images = torch.zeros(len(kept), 3, height, width)
    masks = torch.full((len(kept), height, width), VOID, dtype=torch.long)
    sizes = torch.zeros(len(kept), 2, dtype=torch.long)
    for i, (image, mask) in enumerate(kept):
        h, w = mask.shape
        images[i, :, :h, :w] = image
        masks[i, :h, :w] = mask
        sizes[i] = torch.tensor([h, w])
    return images, masks, sizes


class VocDataModule(BenchDataModule):
    """PASCAL VOC 2012 (+SBD) segmentation; ``root=None`` means the embedded synthetic set."""

    def __init__(
        self,
        root: str | None,
        *,
        resolution: int = 513,
        batch_size: int = 16,
        num_workers: int = 4,
        on_bad_sample: str = "error",
        preset: str = "torchvision",
    ) -> None:
        super().__init__(
            root, resolution=resolution, batch_size=batch_size, num_workers=num_workers, on_bad_sample=on_bad_sample
        )
        self.preset = check_preset(preset, "segmentation")
        # tf-deeplab evaluates each image padded to resolution x resolution (DeepLab's 513 crop);
        # otherwise images run at their own size padded to a multiple of 32 (``inference``).
        self.eval_canvas: int | None = resolution if self.preset == "tf-deeplab" else None
        # tf-deeplab-resize evaluates each whole image resized to resolution x resolution.
        self.eval_resize: int | None = resolution if self.preset == "tf-deeplab-resize" else None
        self.classes: list[str] = []
        self.train_list = ""

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> VocDataModule:
        return cls(**cls.config_kwargs(cfg), preset=cfg.get("preset") or "torchvision")

    def synthetic_root(self) -> Path:
        from tasks.segmentation.synthetic_voc import synthetic_voc

        return synthetic_voc()

    def voc_root(self) -> Path:
        return find_voc_root(self.synthetic_root() if self.synthetic else Path(self.root))

    def prepare_data(self) -> None:
        self.voc_root()

    def setup(self, stage: str | None = None) -> None:
        if self.classes:
            return
        voc = self.voc_root()
        names_file = voc / "class_names.txt"
        if names_file.is_file():
            self.classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
            if not 1 < len(self.classes) <= VOID:
                raise UserError(f"--data: {names_file} must list 2 to {VOID} class names, one a line")
        else:
            self.classes = list(VOC_CLASSES)
        self.num_classes = len(self.classes)
        val_ids = read_split(voc / "ImageSets" / "Segmentation" / "val.txt")
        if stage == "fit" or (voc / "ImageSets" / "Segmentation" / "train.txt").is_file():
            train_ids, mask_folder, self.train_list = self._train_split(voc)
            # SBD's train_aug excludes VOC val; drop any val id anyway so a different list cannot leak val.
            held_out = set(val_ids)
            train_ids = [i for i in train_ids if i not in held_out]
            if not train_ids:
                raise UserError(f"--data: {voc / self.train_list} holds only validation images")
        else:  # a val split alone is enough to evaluate
            train_ids, mask_folder = [], "SegmentationClass"
        self.train_set = VocSegmentation(
            sample_paths(voc, train_ids, mask_folder),
            train_transform(self.resolution, self.preset),
            self.num_classes,
            self.on_bad_sample,
        )
        self.val_set = VocSegmentation(
            sample_paths(voc, val_ids, "SegmentationClass"),
            eval_transform(self.preset),
            self.num_classes,
            self.on_bad_sample,
        )

    def _train_split(self, voc: Path) -> tuple[list[str], str, str]:
        """``(ids, mask folder, list path)``: SBD-augmented when its masks and list exist."""
        if (voc / "SegmentationClassAug").is_dir():
            for relative in AUG_LISTS:
                if (voc / relative).is_file():
                    return read_split(voc / relative), "SegmentationClassAug", relative
            warnings.warn(
                f"{voc / 'SegmentationClassAug'} exists but no list ({' or '.join(AUG_LISTS)}); "
                "training on VOC train only",
                stacklevel=2,
            )
        relative = "ImageSets/Segmentation/train.txt"
        return read_split(voc / relative), "SegmentationClass", relative

    def train_dataloader(self) -> DataLoader:
        # BatchNorm in the image-pooling branch sees one value per channel: never a batch of 1.
        return self.loader(self.train_set, train=True, collate_fn=train_collate)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.val_set, train=False, collate_fn=pad_collate)  # DDP: each image on one rank

    def dataset_info(self) -> dict[str, Any]:
        if self.synthetic:
            name = "synthetic-shapes (VOC layout)"
        else:
            name = "voc2012+sbd" if "Aug" in self.train_list else "voc2012"
        return {
            "name": name,
            "root": "synthetic" if self.synthetic else str(Path(self.root).resolve()),
            "synthetic": self.synthetic,
            "splits": {"train": len(self.train_set), "val": len(self.val_set)},
            "train_list": self.train_list,
            "classes": self.num_classes,
            "preset": self.preset,
        }

    def class_names(self) -> list[str]:
        return list(self.classes)
