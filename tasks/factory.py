"""One model factory for every task, in timm's style: ``create_model(task, backbone, weights=..., **options)``.

Options that are ``None`` are dropped (a flag not given), the backbone's own options (width,
expansion, output stride) go to the backbone, the rest to the task's head. ``weights`` is a small
explicit dispatch, so a new weight source is one entry in ``IMAGENET_WEIGHTS`` (a function that
returns an ImageNet ``ImageClassifier``) or one branch here:

- ``None`` / ``"none"``: random initialisation (the backbone's own init);
- ``"torchvision"`` / ``"timm"``: that library's ImageNet weights for the backbone (and the
  classifier head where the task is classification with 1000 classes);
- a path to a ``bench run`` (Lightning) checkpoint: the whole model, EMA weights when kept;
- a path to an official TFLite checkpoint (``.tflite``): imported by the task
  (``Task.import_tflite``); a classifier fine-tuned on another label set gets a fresh head.

Commands load models through ``tasks.loading`` (config, model and provenance together).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from backbones import BACKBONE_OPTIONS, backbone_options, create_backbone
from backbones.classifier import ImageClassifier
from backbones.errors import UserError
from backbones.features import Backbone

if TYPE_CHECKING:
    from tasks.base import Task

def backbone_from_config(cfg: dict[str, Any]) -> Backbone:
    """The randomly initialised backbone a run config names; a bad option is a one-line error."""
    try:
        return create_backbone(cfg["backbone"], **backbone_options(cfg))
    except ValueError as error:
        raise UserError(f"--backbone {cfg['backbone']}: {error}") from None


def library_classifier(source: str, backbone: str, num_classes: int, **options: Any) -> ImageClassifier:
    from backbones.pretrained import PretrainedWeightsError, pretrained_classifier

    try:
        return pretrained_classifier(backbone, num_classes=num_classes, source=source, **options)
    except PretrainedWeightsError as error:
        raise UserError(f"--pretrained: {error}") from None


# Weight sources that start from an ImageNet classifier: (backbone, num_classes, **backbone options).
IMAGENET_WEIGHTS: dict[str, Callable[..., ImageClassifier]] = {
    source: partial(library_classifier, source) for source in ("torchvision", "timm")
}


def create_model(
    task: str | Task, backbone: str, *, weights: str | None = None, num_classes: int | None = None, **options: Any
) -> nn.Module:
    """The whole network of ``task`` (a name or a ``Task``) on ``backbone``, with ``weights`` loaded."""
    if isinstance(task, str):
        from tasks.registry import get_task

        task = get_task(task)
    given = {k: v for k, v in options.items() if v is not None}
    body_options = {k: given.pop(k) for k in BACKBONE_OPTIONS if k in given}
    num_classes = task.default_num_classes if num_classes is None else num_classes
    if weights in (None, "none"):
        body = backbone_from_config({"backbone": backbone, **body_options})
        return task.assemble(body, num_classes=num_classes, **given)
    if weights in IMAGENET_WEIGHTS:
        # Classification keeps the ImageNet head (a fresh one for another class count); other tasks the body.
        classes = num_classes if task.is_classifier else 1000
        classifier = IMAGENET_WEIGHTS[weights](backbone, classes, **body_options)
        return classifier if task.is_classifier else task.assemble(classifier.backbone, num_classes=num_classes, **given)
    if Path(weights).suffix == ".tflite":
        return imported_model(task, weights, backbone=backbone, width=body_options.get("width"), num_classes=num_classes)[0]
    if Path(weights).suffix == ".ckpt" or Path(weights).is_file():
        model = create_model(task, backbone, num_classes=num_classes, **body_options, **given)
        model.load_state_dict(checkpoint_state(read_checkpoint(weights)))
        return model
    raise UserError(f"--pretrained: unknown weights {weights!r}; choose from none, {', '.join(IMAGENET_WEIGHTS)} or a .ckpt file")


def imported_model(
    task: Task, weights: str, *, backbone: str | None = None, width: float | None = None, num_classes: int | None = None
) -> tuple[nn.Module, Any]:
    """An official ``.tflite`` imported into the suite's model, and the import's report; a classifier
    fine-tuned on another label set (``num_classes``) gets a fresh head."""
    model, report = task.import_tflite(weights, backbone=backbone, width=width)
    if num_classes is not None and num_classes != report.facts.num_classes:
        if not task.is_classifier:
            raise UserError(f"--weights: {weights} predicts {report.facts.num_classes} classes, not {num_classes}")
        model.head = model.backbone.make_classifier(num_classes)
    return model, report


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A ``bench run`` checkpoint (tensors only: ``weights_only=True``); a bad file is a one-line error."""
    if not Path(path).is_file():
        raise UserError(f"--checkpoint: {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's input
        raise UserError(f"--checkpoint: {path} is not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("bench_config"), dict) or "state_dict" not in checkpoint:
        raise UserError(f"--checkpoint: {path} was not written by bench run (no bench_config)")
    return checkpoint


def checkpoint_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The network's weights in a checkpoint: the EMA weights when the run kept them (what it evaluated)."""
    prefix = "ema." if any(k.startswith("ema.") for k in checkpoint["state_dict"]) else "model."
    return {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}


def build_model(task: Task, cfg: dict[str, Any]) -> nn.Module:
    """The whole network for a run config (backbone and head), used by run, profile and latency."""
    return create_model(
        task, cfg["backbone"], weights=cfg.get("weights") or cfg.get("pretrained"), num_classes=cfg["num_classes"],
        **backbone_options(cfg), **task.model_options(cfg),
    )  # fmt: skip
