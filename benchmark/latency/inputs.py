"""Inputs for timing: a real validation image of the task, and calibration images for static int8."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from backbones.errors import UserError
from tasks.images import fit_canvas


# --------------------------------------------------------------------------------------------
# Task data: a real input image and calibration images
# --------------------------------------------------------------------------------------------
def item_image(item: Any) -> torch.Tensor:
    """The image tensor (C x H x W) of one dataset item: ``(image, target)``, a dict, or an image."""
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, dict):
        for key in ("image", "images", "pixel_values"):
            if key in item:
                return item_image(item[key])
    if isinstance(item, (list, tuple)) and item:
        return item_image(item[0])
    raise TypeError(f"cannot find an image in a dataset item of type {type(item).__name__}")


@dataclass
class TaskImages:
    """Validation images of a task's datamodule, read by index (no workers, no shuffling), each
    fitted to the square input the model is measured at."""

    example: torch.Tensor
    description: str
    dataset: Any = None
    size: int = 0
    num_classes: int | None = None

    def images(self, indices: Iterable[int]) -> torch.Tensor | None:
        if self.dataset is None:
            return None
        items = [item for item in (self.dataset[i] for i in indices) if item is not None]
        return torch.stack([fit_canvas(item_image(item), self.size) for item in items]) if items else None

    def __len__(self) -> int:
        return 0 if self.dataset is None else len(self.dataset)


def load_task_images(task: Any, cfg: dict[str, Any], batch_size: int) -> TaskImages:
    """The first ``batch_size`` validation images of the task's data (synthetic by default).

    Falls back to seeded uniform noise, said so in the record, when the task has no datamodule.
    """
    size = int(cfg["resolution"])
    try:
        datamodule = task.build_datamodule(dict(cfg, num_workers=0, batch_size=batch_size))
        datamodule.prepare_data()
        datamodule.setup("validate")
        dataset = datamodule.val_dataloader().dataset
        images = TaskImages(torch.empty(0), "", dataset, size, getattr(datamodule, "num_classes", None))
        example = images.images(range(min(batch_size, len(dataset))))
        if example is None:
            raise RuntimeError("the validation split yielded no images")
        if example.shape[0] < batch_size:  # a tiny validation split: repeat its images
            example = example.repeat((batch_size + example.shape[0] - 1) // example.shape[0], 1, 1, 1)[:batch_size]
        synthetic = cfg.get("data") in (None, "synthetic")
        images.example = example.contiguous()
        source = "synthetic validation split" if synthetic else f"validation split of {cfg.get('data')}"
        images.description = f"image {0 if batch_size == 1 else f'0..{batch_size - 1}'} of the {source}"
        return images
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - any datamodule failure: measure on noise, and say so
        warnings.warn(f"bench latency: no validation image ({type(error).__name__}: {error}); timing on noise", stacklevel=2)
        generator = torch.Generator().manual_seed(0)
        noise = torch.rand(batch_size, 3, size, size, generator=generator) * 2 - 1
        return TaskImages(noise, f"uniform noise (no validation data: {type(error).__name__})")


def calibration_batches(images: TaskImages, count: int, gate_images: int, batch: int = 8) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """``count`` validation images spread evenly over the split.

    Evenly spaced, not the first or last ones: splits are often sorted by class (ImageFolder), and
    ranges calibrated on a few classes clip the others' activations (the logits above all).
    """
    total = len(images)
    if total == 0 or count <= 0:
        return ([images.example] if count > 0 else []), {"images": images.example.shape[0], "source": images.description}
    count = min(count, total)
    step = total / count
    indices = [int(step * i + step / 2) for i in range(count)]
    batches = [b for b in (images.images(indices[i : i + batch]) for i in range(0, count, batch)) if b is not None]
    info = {
        "images": count,
        "source": f"validation split, every {step:.1f}th image",
        "overlaps_gate": indices[0] < gate_images,
    }
    return batches, info


