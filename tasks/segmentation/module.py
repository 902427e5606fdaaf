"""Lightning module for semantic segmentation: cross-entropy ignoring void, VOC mIoU over the val set."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tasks.base import BenchModule, Config, optim_kwargs
from tasks.segmentation.inference import groups_by_size, segment
from tasks.segmentation.metrics import confusion_metric, scores_from_confusion
from tasks.segmentation.options import DEFAULTS, SegmentationOptions
from tasks.segmentation.voc import VOID

PICTURES_PER_EPOCH = 4


class SegmentationModule(BenchModule):
    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        *,
        options: SegmentationOptions = DEFAULTS,
        class_names: list[str] | None = None,
        **optim: Any,
    ) -> None:
        super().__init__(model, **optim)
        self.num_classes = num_classes
        self.options = options  # validation's scales and flip
        self.class_names = list(class_names or [])
        self.confusion = confusion_metric(num_classes)
        self._last: dict[str, Any] = {}

    @classmethod
    def from_config(cls, cfg: Config, model: nn.Module, options: SegmentationOptions) -> SegmentationModule:
        """The run config's training settings (classes, optimizer) with the task's ``options``."""
        return cls(model, cfg["num_classes"], options=options, class_names=cfg.get("class_names"), **optim_kwargs(cfg))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        # BatchNorm after image pooling sees one value per channel and image: it cannot train on one
        # image (a batch shrunk by skipped bad samples); skip that step.
        if batch is None or len(batch[0]) < 2:
            return None
        images, masks = batch
        loss = F.cross_entropy(self.model(images), masks, ignore_index=VOID)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(images))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if batch is None:
            return
        images, masks, sizes = batch
        model = self.eval_model()
        scales, flip = self.options.eval_scales, self.options.eval_flip
        plain = scales == (1.0,) and not flip
        loss_sum, labelled = images.new_zeros(()), 0
        # Each image runs at its own size: same-size images together, padding of the batch cropped off.
        for (height, width), index in groups_by_size(sizes).items():
            group_images = images[index, :, :height, :width]
            group_masks = masks[index, :height, :width]
            scores = segment(model, group_images, scales, flip)
            predicted = scores.argmax(1)
            self.confusion.update(predicted, group_masks)
            if plain:  # with MF the scores are averaged probabilities, not logits
                loss_sum = loss_sum + F.cross_entropy(scores, group_masks, ignore_index=VOID, reduction="sum")
                labelled += int((group_masks != VOID).sum())
            if batch_idx == 0 and index[0] == 0:
                self._log_pictures(group_images, predicted, group_masks)
        if plain:
            self.log(
                "val/loss", loss_sum / max(1, labelled), on_epoch=True, sync_dist=True, batch_size=len(images)
            )

    def on_validation_epoch_end(self) -> None:
        # The confusion matrix is summed over ranks; the eval sampler gives each image to one rank.
        self._last = scores_from_confusion(self.confusion.compute(), self.class_names)
        self.confusion.reset()
        for key in ("miou", "pixel_acc"):
            self.log(
                f"val/{key}", self._last[key], prog_bar=key == "miou", sync_dist=False, rank_zero_only=False
            )

    def final_metrics(self) -> dict[str, Any]:
        return dict(self._last)

    def _log_pictures(self, images: torch.Tensor, predicted: torch.Tensor, masks: torch.Tensor) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if not isinstance(self.logger, WandbLogger) or self.trainer.sanity_checking:
            return
        import wandb

        from tasks.images import denormalize

        labels = {i: name for i, name in enumerate(self.class_names)} | {VOID: "void"}
        pictures = [
            wandb.Image(
                pixels,
                masks={
                    "prediction": {"mask_data": pred.cpu().numpy().astype("uint8"), "class_labels": labels},
                    "ground_truth": {
                        "mask_data": truth.cpu().numpy().astype("uint8"),
                        "class_labels": labels,
                    },
                },
            )
            for pixels, pred, truth in zip(
                denormalize(images[:PICTURES_PER_EPOCH]),
                predicted[:PICTURES_PER_EPOCH],
                masks[:PICTURES_PER_EPOCH],
                strict=True,
            )
        ]
        self.logger.experiment.log({"val/masks": pictures, "trainer/global_step": self.global_step})
