"""Lightning module for SSD/SSDLite: the SSD loss in training, COCO evaluation over the whole val set."""

from __future__ import annotations

from typing import Any

import torch

from tasks.base import BenchModule, Config, optim_kwargs
from tasks.detection.decoder import DetectionDecoder
from tasks.detection.evaluation import CocoEvaluator
from tasks.detection.loss import ssd_loss
from tasks.detection.options import DEFAULTS, DetectionOptions
from tasks.detection.ssdlite import SSDLite

PICTURES_PER_EPOCH = 4
PICTURE_SCORE = 0.3  # boxes drawn on the W&B pictures (evaluation keeps everything above score_threshold)


def to_original_size(
    detections: list[dict[str, torch.Tensor]], input_size: tuple[int, int], orig_sizes: torch.Tensor
) -> list[dict[str, torch.Tensor]]:
    """Boxes from the square network input back to each image's own pixels (per-axis scale)."""
    scaled = []
    for detection, (height, width) in zip(detections, orig_sizes.tolist(), strict=True):
        scale = detection["boxes"].new_tensor([width / input_size[1], height / input_size[0]] * 2)
        scaled.append({**detection, "boxes": detection["boxes"] * scale})
    return scaled


class DetectionModule(BenchModule):
    def __init__(
        self,
        model: SSDLite,
        *,
        options: DetectionOptions = DEFAULTS,
        **optim: Any,
    ) -> None:
        super().__init__(model, **optim)
        # The loss's scoring and mining and the validation decoder's post-processing: one object, so
        # the loss scores classes as the decoder does.
        self.options = options
        self.class_names: list[str] = []
        self.evaluator: CocoEvaluator | None = None
        self._last: dict[str, float] = {}

    @classmethod
    def from_config(cls, cfg: Config, model: SSDLite, options: DetectionOptions) -> DetectionModule:
        """The run config's training settings (optimizer, class names) with the task's ``options``."""
        module = cls(model, options=options, **optim_kwargs(cfg))
        module.class_names = list(cfg.get("class_names") or [])
        return module

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any] | None, batch_idx: int) -> torch.Tensor | None:
        if batch is None:  # every file of the batch was unreadable and skipped
            return None
        images = batch["images"]
        class_logits, box_regression = self.model(images)
        anchors = self.model.anchors(tuple(images.shape[-2:]), images.device)
        losses = self._loss(class_logits, box_regression, batch["targets"], anchors)
        size = len(images)
        self.log("train/loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=False, batch_size=size)
        self.log("train/box_loss", losses["box_loss"], on_step=True, on_epoch=False, batch_size=size)
        self.log("train/class_loss", losses["class_loss"], on_step=True, on_epoch=False, batch_size=size)
        if batch["skipped"]:
            self.log("train/skipped_samples", float(batch["skipped"]), on_step=False, on_epoch=True, reduce_fx="sum")
        return losses["loss"]

    def _loss(self, class_logits: torch.Tensor, box_regression: torch.Tensor, targets: list[dict[str, torch.Tensor]],
              anchors: torch.Tensor) -> dict[str, torch.Tensor]:
        return ssd_loss(class_logits, box_regression, targets, anchors, scoring=self.options.scoring,
                        mining=self.options.hard_mining)

    # -- validation -----------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        if self.evaluator is None:
            datamodule = self.trainer.datamodule
            self.evaluator = CocoEvaluator(datamodule.val_ground_truth(), datamodule.category_ids())
        self.evaluator.reset()

    def validation_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is None:
            return
        images = batch["images"]
        model = self.eval_model()
        class_logits, box_regression = model(images)
        input_size = tuple(images.shape[-2:])
        anchors = model.anchors(input_size, images.device)
        losses = self._loss(class_logits, box_regression, batch["targets"], anchors)
        self.log("val/loss", losses["loss"], on_epoch=True, sync_dist=True, batch_size=len(images))
        decode = DetectionDecoder(model.anchors, self.options)
        detections = decode((class_logits, box_regression), input_size)
        self.evaluator.update(batch["image_ids"].tolist(), to_original_size(detections, input_size, batch["orig_sizes"]))
        if batch_idx == 0:
            self._log_pictures(images, detections, batch["targets"])

    def on_validation_epoch_end(self) -> None:
        # Every rank gathers every rank's detections and computes the same numbers.
        metrics = self.evaluator.compute()
        if self.trainer.sanity_checking:
            return
        self._last = {k: int(v) if k == "images" else float(v) for k, v in metrics.items()}
        for key, value in self._last.items():
            if key == "images":
                continue
            self.log(f"val/{key}", value, prog_bar=key in ("map", "map_50"), sync_dist=False, rank_zero_only=False)

    def final_metrics(self) -> dict[str, float]:
        """The 12 COCO numbers in percent (-1 where the val set has no object of that size) and the
        number of images evaluated over all ranks."""
        return dict(self._last)

    def _log_pictures(
        self, images: torch.Tensor, detections: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]
    ) -> None:
        from lightning.pytorch.loggers import WandbLogger

        if not isinstance(self.logger, WandbLogger) or self.trainer.sanity_checking:
            return
        import wandb

        from tasks.images import denormalize

        names = {i: self.class_names[i] if i < len(self.class_names) else str(i) for i in range(self.model.num_classes)}

        def box_data(boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor | None) -> list[dict[str, Any]]:
            rows = []
            for i, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist(), strict=True)):
                entry: dict[str, Any] = {
                    "position": {"minX": box[0], "minY": box[1], "maxX": box[2], "maxY": box[3]},
                    "domain": "pixel",
                    "class_id": int(label),
                    "box_caption": names.get(int(label), str(label)),
                }
                if scores is not None:
                    if float(scores[i]) < PICTURE_SCORE:
                        continue
                    entry["scores"] = {"score": float(scores[i])}
                    entry["box_caption"] += f" {float(scores[i]):.2f}"
                rows.append(entry)
            return rows

        pictures = []
        pixels = denormalize(images[:PICTURES_PER_EPOCH])
        for picture, detection, target in zip(pixels, detections, targets, strict=False):
            boxes = {
                "predictions": {
                    "box_data": box_data(detection["boxes"], detection["labels"], detection["scores"]),
                    "class_labels": names,
                },
                "ground_truth": {"box_data": box_data(target["boxes"], target["labels"], None), "class_labels": names},
            }
            pictures.append(wandb.Image(picture, boxes=boxes))
        self.logger.experiment.log({"val/examples": pictures, "trainer/global_step": self.global_step})
