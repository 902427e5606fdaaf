"""What every task provides to ``bench``: a task definition, a Lightning module base, a datamodule base.

A task knows a backbone only through its feature specs; ``bench run/profile/latency`` know a
task only through ``Task``.
"""

from __future__ import annotations

import copy
import functools
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from backbones.counting import count_madds, count_params
from backbones.errors import UserError
from backbones.features import Backbone
from tasks.facts import TASK_FACTS, TaskFacts
from tasks.schedules import OPTIMIZERS, SCHEDULES, lr_factor, make_optimizer

Config = dict[str, Any]


class Task(ABC):
    """One task of the suite (classification, detection, segmentation)."""

    name: str
    default_resolution: int
    default_num_classes: int
    # The model is an ImageNet-style classifier (ImageNet weights keep their head; see tasks.factory).
    is_classifier: bool = False

    @property
    def facts(self) -> TaskFacts:
        """The task's row of the per-task facts table (metric, gate target, titles)."""
        return TASK_FACTS[self.name]

    @property
    def monitor(self) -> str:
        """Metric (a key of the record's ``metrics``, in percent) that picks the best checkpoint."""
        return self.facts.metric

    def defaults(self) -> Config:
        """Task-level defaults, overridden by a recipe file and then by flags."""
        return {}

    def parse_options(self, cfg: Config) -> Any:
        """The task's own settings in ``cfg`` as a typed object, checked (one-line errors); ``None`` when
        the task has none. Checked at the edge (``resolve_config``); the task's builders
        (``decoder``, ``build_module``, ``build_datamodule``) parse them once and hand the object on,
        so nothing past them reads the task's keys from the dict or restates their defaults."""
        return None

    def model_options(self, cfg: Config) -> dict[str, Any]:
        """The head options ``assemble`` takes, from a run config."""
        return {}

    @abstractmethod
    def assemble(self, backbone: Backbone, *, num_classes: int, **options: Any) -> nn.Module:
        """The whole network on ``backbone``: the task's head (``tasks.factory.create_model`` calls it)."""

    def example_input(self, cfg: Config, batch_size: int = 1) -> torch.Tensor:
        size = int(cfg["resolution"])
        return torch.zeros(batch_size, 3, size, size)

    def profile(self, model: nn.Module, cfg: Config) -> dict[str, Any]:
        """Params and MAdds of the whole model; tasks add their parts (a head alone, say)."""
        return {"params": count_params(model), "madds": count_madds(model, self.example_input(cfg))}

    has_decoder = False  # True where raw outputs need decoding into predictions (detection)

    def decoder(self, model: nn.Module, cfg: Config) -> Any:
        """``(raw outputs, input size) -> predictions`` for ``model`` (detection: its anchors, box
        decoding + NMS), built once. Kept out of ``forward`` so the network alone exports and is
        timed alone; every command decodes through it."""
        return lambda outputs, size: outputs

    def evaluate_callable(
        self, forward: Any, cfg: Config, max_images: int | None = None, *, decoder: Any = None
    ) -> dict[str, float]:
        """Run ``forward`` (a batch tensor -> raw outputs, as the model returns them) over the task's
        validation data and return its metrics in percent, ``monitor`` included; ``decoder`` (the
        task's ``decoder(model, cfg)``) turns raw outputs into predictions where the task needs it.

        The latency runner uses it to compare a runtime's outputs with eager fp32 (accuracy gate).
        """
        raise NotImplementedError

    def tflite_class_names(self, cfg: Config) -> list[str]:
        """Label names of an official checkpoint's classes (pictures of ``bench predict``)."""
        return []

    def evaluator(self) -> Any:
        """The per-image evaluator ``tasks.evaluate.evaluate`` runs (``bench eval``): a function
        (model, datamodule, keep predictions) -> ``tasks.evaluate.PerImage``."""
        raise UserError(f"--task {self.name}: bench eval does not support this task")

    def import_tflite(self, path: str, *, backbone: str | None = None, width: float | None = None) -> tuple[nn.Module, Any]:
        """The suite's model for an official TFLite checkpoint of this task, weights loaded, and the
        import report (``tasks.tflite.importer``)."""
        from tasks.tflite.importer import import_tflite

        return import_tflite(path, task=self.name, backbone=backbone, width=width)

    def tflite_file_config(self, path: str, *, backbone: str | None = None, width: float | None = None) -> Any:
        """What an official ``.tflite`` of this task implies for a run config (``FileConfig``), read
        without building the model: commands that only need a file's facts never import it."""
        from tasks.tflite.facts import read_file_config

        return read_file_config(path, task=self.name)

    @abstractmethod
    def build_datamodule(self, cfg: Config) -> BenchDataModule: ...

    def predict(self, checkpoint: str, images: list[str], out_dir: str, given: dict[str, Any]) -> list[str]:
        """Run a trained checkpoint on image files and write pictures to ``out_dir``; returns their
        paths. ``given``: the task options the user gave for this prediction (None: not given)."""
        raise UserError(f"--task {self.name}: bench predict is not available for this task")

    def draw_validation(self, checkpoint: str, out_dir: str, count: int = 4) -> list[str]:
        """Pictures of a few validation images with the trained model's predictions and the truth
        (written at the end of ``bench run``); tasks without pictures write none."""
        return []

    @abstractmethod
    def build_module(self, cfg: Config, model: nn.Module) -> BenchModule: ...


def eval_sampler(dataset: Any) -> torch.utils.data.Sampler | None:
    """Under DDP, split evaluation data across ranks without padding, so no sample counts twice.

    (PyTorch's DistributedSampler pads ranks to equal length by repeating samples; metrics
    that sum over ranks would then count those samples twice.) Lightning keeps a sampler that is
    already distributed; outside DDP the default sequential sampler is used.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(dataset, shuffle=False)


def skip_none_collate(batch: list[Any]) -> Any:
    """Default collation minus the samples a dataset skipped (returned as ``None``)."""
    from torch.utils.data import default_collate

    kept = [item for item in batch if item is not None]
    return default_collate(kept) if kept else None


class BenchDataModule(L.LightningDataModule):
    """A datamodule over a dataset root or, with ``root=None``, the task's embedded synthetic set;
    it can say what data it holds (for records and 'synthetic' labels)."""

    # Seeds the training order and augmentation (``tasks.resumable``); ``bench run`` sets the run's --seed.
    seed: int = 0

    def __init__(
        self, root: str | None, *, resolution: int, batch_size: int, num_workers: int, on_bad_sample: str = "error"
    ) -> None:
        super().__init__()
        self.root = root
        self.synthetic = root is None
        self.resolution = resolution
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_bad_sample = on_bad_sample
        self.num_classes = 0

    @staticmethod
    def config_kwargs(cfg: Config) -> dict[str, Any]:
        """The constructor arguments every datamodule takes from a run config."""
        data = cfg.get("data")
        return {
            "root": None if data in (None, "synthetic") else str(data),
            "resolution": cfg["resolution"],
            "batch_size": cfg["batch_size"],
            "num_workers": cfg["num_workers"],
            "on_bad_sample": cfg.get("on_bad_sample", "error"),
        }

    @classmethod
    def from_config(cls, cfg: Config) -> BenchDataModule:
        return cls(**cls.config_kwargs(cfg))

    def synthetic_root(self) -> Path:
        """The embedded dataset's folder (generated on first use)."""
        raise NotImplementedError

    def dataset_root(self) -> Path:
        if self.synthetic:
            return self.synthetic_root()
        root = Path(self.root)
        if not root.is_dir():
            raise UserError(f"--data: {root} does not exist or is not a folder")
        return root

    def prepare_data(self) -> None:
        self.dataset_root()

    def loader(self, dataset: Any, *, train: bool, collate_fn: Any) -> torch.utils.data.DataLoader:
        """The DataLoader of every task: training shuffled, its last short batch dropped (BatchNorm never
        sees a batch of 1) and resumable mid-epoch (``tasks.resumable``); evaluation in order, split across
        DDP ranks without padding (``eval_sampler``)."""
        options = {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            "pin_memory": torch.cuda.is_available(),
            "persistent_workers": self.num_workers > 0,
            "collate_fn": collate_fn,
        }
        if train:
            from tasks.resumable import ResumableLoader

            return ResumableLoader(dataset, seed=self.seed, drop_last=len(dataset) > self.batch_size, **options)
        return torch.utils.data.DataLoader(dataset, sampler=eval_sampler(dataset), **options)

    def dataset_info(self) -> dict[str, Any]:
        """``{"name", "root", "synthetic", "splits": {split: size}}``; call after ``setup``."""
        raise NotImplementedError

    def class_names(self) -> list[str]:
        """Names of the classes, index = label (saved in the run config for predict and pictures)."""
        return [str(i) for i in range(getattr(self, "num_classes", 0))]


def optim_kwargs(cfg: Config) -> dict[str, Any]:
    """``BenchModule``'s optimizer, schedule, EMA and memory-format arguments from a run config."""
    return {
        "optimizer": cfg["optimizer"],
        "lr": cfg["lr"],
        "weight_decay": cfg["weight_decay"],
        "momentum": cfg["momentum"],
        "schedule": cfg["schedule"],
        "lr_decay": cfg["lr_decay"],
        "warmup_epochs": cfg["warmup_epochs"],
        "ema_decay": cfg.get("ema_decay"),
        "channels_last": cfg.get("channels_last", False),
    }


class BenchModule(L.LightningModule):
    """Shared training machinery: the optimizer recipes and schedules of ``tasks.schedules``, weight EMA.
    Subclasses implement the steps and ``final_metrics``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: str = "sgd",
        lr: float = 0.045,
        weight_decay: float = 4e-5,
        momentum: float = 0.9,
        schedule: str = "step",
        lr_decay: float = 0.98,
        warmup_epochs: float = 0.0,
        ema_decay: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS or schedule not in SCHEDULES:
            raise ValueError(f"unknown optimizer {optimizer!r} or schedule {schedule!r}")
        self.model = model
        self.optimizer_name = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.schedule = schedule
        self.lr_decay = lr_decay
        self.warmup_epochs = warmup_epochs
        self.ema_decay = ema_decay
        self.channels_last = channels_last
        self.ema: nn.Module | None = None
        if ema_decay:
            self.ema = copy.deepcopy(model).eval()
            for p in self.ema.parameters():
                p.requires_grad_(False)

    # -- memory format ----------------------------------------------------------------------
    def on_fit_start(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """The batch's images (its 4-D float tensors, at the top level) in the weights' memory format."""
        if not self.channels_last:
            return batch

        def nhwc(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.ndim == 4 and value.is_floating_point():
                return value.contiguous(memory_format=torch.channels_last)
            return value

        if isinstance(batch, dict):
            return {key: nhwc(value) for key, value in batch.items()}
        if isinstance(batch, (list, tuple)):
            return type(batch)(nhwc(value) for value in batch)
        return nhwc(batch)

    # -- weights used for evaluation -------------------------------------------------------
    def eval_model(self) -> nn.Module:
        """The EMA weights when EMA is on, else the trained model."""
        return self.ema if self.ema is not None else self.model

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is None:
            return
        with torch.no_grad():
            for ema_p, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                ema_p.lerp_(p.detach(), 1.0 - self.ema_decay)
            for ema_b, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                ema_b.copy_(b)

    # -- optimizers -------------------------------------------------------------------------
    def configure_optimizers(self):
        decay, no_decay = [], []
        for p in self.model.parameters():
            if not p.requires_grad:
                continue
            # No weight decay on BatchNorm affine and biases (torchvision's --norm-weight-decay 0 habit).
            (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": self.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        optimizer = make_optimizer(self.optimizer_name, groups, lr=self.lr, momentum=self.momentum)
        steps_per_epoch = max(1, self._steps_per_epoch())
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup_epochs * steps_per_epoch)
        factor = functools.partial(
            lr_factor,
            schedule=self.schedule,
            warmup=warmup,
            total=total,
            steps_per_epoch=steps_per_epoch,
            decay_rate=self.lr_decay,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _steps_per_epoch(self) -> int:
        trainer = self.trainer
        batches = trainer.num_training_batches
        if not isinstance(batches, int) and not (isinstance(batches, float) and math.isfinite(batches)):
            return 1
        return max(1, math.ceil(int(batches) / max(1, trainer.accumulate_grad_batches)))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        optimizer = self.optimizers()
        if not isinstance(optimizer, list):
            self.log("lr", optimizer.param_groups[0]["lr"], prog_bar=False, on_step=True, on_epoch=False)

    # -- checkpoints ------------------------------------------------------------------------
    # The resolved run config travels inside every checkpoint, so predict/latency can rebuild the model.
    bench_config: Config | None = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["bench_config"] = self.bench_config

    # -- results ----------------------------------------------------------------------------
    def final_metrics(self) -> dict[str, Any]:
        """Metrics of the last validation run for the record (percent where they are rates)."""
        raise NotImplementedError
