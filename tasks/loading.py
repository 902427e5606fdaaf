"""One road from a weights source to a model, for every command that needs one (run, eval, predict,
profile, latency, export, device runs, sweeps).

A source is a run config (fresh init, a library's pretrained weights, or an official ``.tflite`` named
by ``weights``) or a ``bench run`` checkpoint, whose saved config fixes the network. ``load`` returns
the model with the config that describes it and one provenance record; an official file is imported
once (its facts alone, for a config, come from ``tflite_config``, which builds nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backbones.errors import UserError
from tasks.factory import build_model, imported_model, read_checkpoint
from tasks.provenance import weights_provenance

if TYPE_CHECKING:
    from torch import nn

    from tasks.base import Task

# What a checkpoint fixes: flags that would change its network are refused, not silently ignored.
CHECKPOINT_FIXES = ("backbone", "width", "expansion", "output_stride", "num_classes", "config", "weights", "pretrained")


@dataclass(frozen=True)
class Loaded:
    """A model in eval mode, the run config that describes it, and where its weights came from."""

    config: dict[str, Any]
    model: nn.Module
    weights: dict[str, Any]  # the provenance every record stores (tasks.provenance)
    report: Any = None  # an imported .tflite: what the import did (tasks.tflite.importer.ImportReport)


def load(task: Task, cfg: Mapping[str, Any], *, checkpoint: str | None = None) -> Loaded:
    """``cfg``'s model; with ``checkpoint`` that run's network, ``cfg``'s other values (input size,
    data, evaluation settings) over its saved config."""
    if checkpoint:
        fixed = [key for key in CHECKPOINT_FIXES if cfg.get(key) is not None]
        if fixed:
            flag = "--" + fixed[0].replace("_", "-")
            raise UserError(f"{flag}: the checkpoint fixes the model; drop {flag} or --checkpoint")
        saved = read_checkpoint(checkpoint)["bench_config"]
        if saved.get("task") != task.name:
            raise UserError(f"--checkpoint: {checkpoint} is a {saved.get('task')!r} checkpoint, not {task.name!r}")
        model = build_model(task, dict(saved, weights=None, pretrained=str(checkpoint)))
        given = {key: value for key, value in cfg.items() if value is not None}
        return Loaded({**saved, **given, "pretrained": None}, model.eval(), weights_provenance({}, checkpoint))
    config = dict(cfg)
    weights = weights_provenance(config)
    if str(config.get("weights") or "").endswith(".tflite"):
        model, report = imported_model(task, str(config["weights"]), backbone=config.get("backbone"),
                                       width=config.get("width"), num_classes=config.get("num_classes"))
        # The import's details (layers and values copied, notes, the file's post-processing) with the file's name.
        return Loaded(config, model.eval(), {**report.as_dict(), **weights}, report)
    return Loaded(config, build_model(task, config).eval(), weights)


def load_file(task: Task, source: str) -> Loaded:
    """``bench predict``'s model: a ``bench run`` checkpoint, or an official ``.tflite`` with the
    task's defaults, the file's config and its class names."""
    if not str(source).endswith(".tflite"):
        return load(task, {}, checkpoint=source)
    cfg = {**task.defaults(), **tflite_config(task, source), "task": task.name, "weights": str(source)}
    cfg["class_names"] = task.tflite_class_names(cfg)
    return load(task, cfg)


def tflite_config(task: Task, weights: str, *, backbone: str | None = None, width: float | None = None) -> dict[str, Any]:
    """What an official ``.tflite`` implies for a run config: its backbone, width, input size, class
    count, preset, head options and post-processing (read from the file without building a model)."""
    path = Path(weights)
    if path.suffix != ".tflite":
        raise UserError(f"--weights: {weights} is not a .tflite file (bench run checkpoints go to --checkpoint)")
    if not path.is_file():
        raise UserError(f"--weights: {weights} does not exist")
    # The file's own post-processing (TFLite's SSD op) is the default of every command that decodes.
    return task.tflite_file_config(weights, backbone=backbone, width=width).config()
