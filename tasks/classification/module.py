"""Lightning module for image classification: cross-entropy, top-1/top-5 with torchmetrics."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from tasks.base import BenchModule, Config, optim_kwargs


class ClassificationModule(BenchModule):
    def __init__(self, model: nn.Module, num_classes: int, *, label_smoothing: float = 0.0, **optim: Any) -> None:
        super().__init__(model, **optim)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
        self.class_names: list[str] = []
        self._last: dict[str, float] = {}

    @classmethod
    def from_config(cls, cfg: Config, model: nn.Module) -> ClassificationModule:
        module = cls(
            model,
            cfg["num_classes"],
            label_smoothing=cfg.get("label_smoothing") or 0.0,
            **optim_kwargs(cfg),
        )
        module.class_names = list(cfg.get("class_names") or [])
        return module

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        if batch is None:
            return None
        images, labels = batch
        logits = self.model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(labels))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if batch is None:
            return
        images, labels = batch
        logits = self.eval_model()(images)
        self.log("val/loss", F.cross_entropy(logits, labels), on_epoch=True, sync_dist=True, batch_size=len(labels))
        self.top1.update(logits, labels)
        self.top5.update(logits, labels)
        if batch_idx == 0:
            self._log_images(images, logits.argmax(1), labels)

    def on_validation_epoch_end(self) -> None:
        # torchmetrics sums correct/total over ranks; the eval sampler gives each image to one rank.
        self._last = {"top1": 100.0 * self.top1.compute().item(), "top5": 100.0 * self.top5.compute().item()}
        self.top1.reset()
        self.top5.reset()
        for key, value in self._last.items():
            self.log(f"val/{key}", value, prog_bar=key == "top1", sync_dist=False, rank_zero_only=False)

    def final_metrics(self) -> dict[str, float]:
        return dict(self._last)

    def _log_images(self, images: torch.Tensor, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if not isinstance(self.logger, WandbLogger) or self.trainer.sanity_checking:
            return
        import wandb

        from tasks.images import denormalize

        def name(index: int) -> str:
            return self.class_names[index] if index < len(self.class_names) else str(index)

        pictures = [
            wandb.Image(pixels, caption=f"pred {name(int(p))} / true {name(int(t))}")
            for pixels, p, t in zip(denormalize(images[:8]), predicted[:8], labels[:8], strict=True)
        ]
        self.logger.experiment.log({"val/examples": pictures, "trainer/global_step": self.global_step})
