"""Run configuration: task defaults <- recipe YAML <- command-line flags, validated once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from backbones import UnknownBackboneError, canonical_name, get_entry
from backbones.errors import UserError
from backbones.features import OUTPUT_STRIDES
from benchmark.runs.limits import check_resolution, check_width
from benchmark.runs.records import REPO_ROOT
from tasks.classification.options import DEFAULTS as CLASSIFICATION
from tasks.factory import BACKBONE_OPTIONS
from tasks.loading import Loaded, load, tflite_config

RECIPES_DIR = REPO_ROOT / "configs"

# Defaults for every task; recipes and flags override them.
GENERAL_DEFAULTS: dict[str, Any] = {
    "backbone": "mnv2",
    "width": None,
    "expansion": None,
    "output_stride": None,
    "pretrained": None,
    # An official TFLite checkpoint (tasks/tflite/importer.py): the model's weights, and the
    # defaults of backbone, width, input size, classes and preset where the user gives none.
    "weights": None,
    # Evaluation preprocessing (tasks/preprocessing.py): torchvision, or the TF presets of imported weights.
    "preset": None,
    "data": "synthetic",
    "batch_size": 32,
    "num_workers": 2,
    # PyTorch intra-op threads for training (None: torch's default). On a 2-core CPU the loader's
    # workers need a core: 2 threads beside them oversubscribe it and each step waits on the slowest.
    "threads": None,
    # NHWC weights and batches in training (timm's --channels-last); oneDNN's depthwise convolutions
    # are about 1.5x faster per step than in NCHW on CPU.
    "channels_last": False,
    "max_epochs": 1,
    "max_steps": -1,
    "optimizer": "sgd",
    "lr": 0.045,
    "weight_decay": 4e-5,
    "momentum": 0.9,
    "schedule": "step",
    "lr_decay": 0.98,
    "warmup_epochs": 0.0,
    "ema_decay": None,
    "label_smoothing": 0.0,
    "seed": 0,
    # torch.use_deterministic_algorithms (Lightning's Trainer(deterministic=True)): bit-reproducible runs.
    "deterministic": False,
    "devices": 1,
    "accelerator": "auto",
    "strategy": "auto",
    "num_nodes": 1,
    "precision": "32-true",
    "logger": "wandb",
    "output": None,
    "val_check_interval": None,
    # Validate every N epochs during training (Lightning's check_val_every_n_epoch); the run always
    # ends with a validation of the final weights, whose numbers the record keeps.
    "val_every_n_epochs": 1,
    "limit_val_batches": None,
    "on_bad_sample": "error",
    "resume": False,
    "wandb_project": None,
    # Every run config holds the classification augmentation's keys (their defaults: the task's options).
    "color_jitter": CLASSIFICATION.color_jitter,
    "min_crop_scale": CLASSIFICATION.min_crop_scale,
    "checkpoint_every": 50,
    "log_every_n_steps": 10,
}


def load_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--config: {path} does not exist") from None
    except yaml.YAMLError as error:
        raise UserError(f"--config: {path} is not valid YAML ({str(error).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"--config: {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def default_recipe(task: str, backbone: str, data: str | None = "synthetic") -> Path | None:
    """The shipped recipe for a run: most specific first.

    configs/<task>_<backbone>_synthetic.yaml, <task>_synthetic.yaml (embedded data only), then
    <task>_<backbone>.yaml, <task>.yaml.
    """
    names = [f"{task}_{backbone}", task]
    if data in (None, "synthetic"):
        names = [f"{task}_{backbone}_synthetic", f"{task}_synthetic", *names]
    for name in names:
        candidate = RECIPES_DIR / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def resolve_config(
    task, given: Mapping[str, Any], *, recipe: str | Path | None = None, shipped_recipes: bool = True
) -> dict[str, Any]:
    """Merge defaults, the recipe and the values the user gave (``None``: not given); the result is
    validated once here and saved with the run.

    ``recipe`` is a ``--config`` file. ``shipped_recipes=False`` (profile, latency) ignores the training
    recipes in ``configs/``: their resolution suits training on the embedded data, not the model as
    published. A recipe the user names still applies.
    """
    cfg: dict[str, Any] = dict(GENERAL_DEFAULTS)
    cfg.update(task="", resolution=task.default_resolution, num_classes=task.default_num_classes)
    cfg.update(task.defaults())
    flags = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(flags) - set(cfg))
    if unknown:
        raise UserError(f"unknown option(s) for task {task.name}: {', '.join(unknown)}")
    backbone = flags.get("backbone") or cfg["backbone"]
    recipe_path = Path(recipe) if recipe else None
    if recipe_path is None and shipped_recipes:
        try:
            backbone = canonical_name(backbone)
        except UnknownBackboneError:
            pass
        recipe_path = default_recipe(task.name, backbone, flags.get("data", cfg["data"]))
    if recipe_path is not None:
        values = load_recipe(recipe_path)
        unknown = sorted(set(values) - set(cfg) - {"task"})
        if unknown:
            raise UserError(f"--config: {recipe_path} has unknown option(s): {', '.join(unknown)}")
        if not recipe:
            # A shipped recipe's backbone options (the synthetic recipes' width) apply only to the
            # backbones that take them; a recipe the user names is taken as written.
            try:
                takes = get_entry(backbone).options
            except UnknownBackboneError:
                takes = ()
            values = {k: v for k, v in values.items() if k not in BACKBONE_OPTIONS or k in takes}
        cfg.update(values)
        cfg["recipe"] = str(recipe_path)
    cfg.update(flags)
    if cfg.get("weights"):
        implied = tflite_config(task, cfg["weights"], backbone=flags.get("backbone"), width=flags.get("width"))
        cfg.update({k: v for k, v in implied.items() if k not in flags})
    cfg["task"] = task.name
    validate(cfg)
    task.parse_options(cfg)  # the task's own flags, checked before anything is built or written
    return cfg


def resolve_model(task, given: Mapping[str, Any], *, checkpoint: str | None = None, recipe: str | Path | None = None) -> Loaded:
    """The model a command evaluates, times or exports, from its flags: a ``bench run`` checkpoint (its
    config fixes the network; the flags' input size, data and evaluation settings apply), else the flags
    over the published model: the task's deployment resolution and width 1.0, not the embedded-data
    recipes' smaller ones (a recipe named with --config still applies)."""
    if checkpoint:
        if recipe:
            raise UserError("--config: the checkpoint fixes the model; drop --config or --checkpoint")
        loaded = load(task, given, checkpoint=checkpoint)
        validate(loaded.config)
        task.parse_options(loaded.config)
        return loaded
    return load(task, resolve_config(task, given, recipe=recipe, shipped_recipes=False))


def validate(cfg: dict[str, Any]) -> dict[str, Any]:
    try:
        entry = get_entry(cfg["backbone"])
    except UnknownBackboneError as error:
        raise UserError(f"--backbone: {error}") from None
    cfg["backbone"] = entry.name
    check_width(cfg.get("width"))
    if cfg.get("expansion") is not None and cfg["expansion"] <= 0:
        raise UserError(f"--expansion must be > 0, got {cfg['expansion']}")
    if cfg.get("output_stride") is not None and cfg["output_stride"] not in OUTPUT_STRIDES:
        raise UserError(f"--output-stride must be 8, 16 or 32, got {cfg['output_stride']}")
    check_resolution(cfg["resolution"])
    if cfg["num_classes"] < 1:
        raise UserError(f"--num-classes must be >= 1, got {cfg['num_classes']}")
    for option in BACKBONE_OPTIONS:
        if cfg.get(option) is not None and option not in entry.options:
            flag = "--" + option.replace("_", "-")
            raise UserError(f"{flag}: backbone {entry.name!r} does not take it (it takes: {', '.join(entry.options)})")
    if cfg.get("pretrained") not in (None, "none") and cfg["pretrained"] not in entry.pretrained:
        raise UserError(f"--pretrained: backbone {entry.name!r} has no {cfg['pretrained']!r} weights")
    if cfg.get("batch_size", 1) < 1:
        raise UserError(f"--batch-size must be >= 1, got {cfg['batch_size']}")
    validate_training(cfg)
    return cfg


def validate_training(cfg: dict[str, Any]) -> None:
    """Training flags, checked before anything is built or written."""
    from benchmark.runs.training import LOGGERS
    from tasks.schedules import OPTIMIZERS, SCHEDULES

    choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "logger": LOGGERS, "on_bad_sample": ("error", "skip")}
    for key, allowed in choices.items():
        if cfg.get(key) not in allowed:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag}: unknown value {cfg.get(key)!r}; choose from {', '.join(allowed)}")
    if cfg.get("val_every_n_epochs") is not None and cfg["val_every_n_epochs"] < 1:
        raise UserError(f"--val-every-n-epochs must be >= 1, got {cfg['val_every_n_epochs']}")
    if cfg.get("threads") is not None and cfg["threads"] < 1:
        raise UserError(f"--threads must be >= 1, got {cfg['threads']}")
    if not isinstance(cfg.get("channels_last", False), bool):  # a recipe's value; the flag is a switch
        raise UserError(f"--channels-last (channels_last): must be true or false, got {cfg['channels_last']!r}")
    for key in ("lr", "num_workers", "weight_decay", "warmup_epochs", "label_smoothing"):
        value = cfg.get(key)
        if value is not None and (value < 0 or (key == "lr" and value == 0)):
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag} must be {'> 0' if key == 'lr' else '>= 0'}, got {value}")
    if cfg.get("ema_decay") is not None and not 0 < cfg["ema_decay"] < 1:
        raise UserError(f"--ema-decay must be between 0 and 1, got {cfg['ema_decay']}")
