"""The classification task definition ``bench`` uses."""

from __future__ import annotations

from torch import nn

from backbones.classifier import ImageClassifier
from benchmark.errors import UserError
from tasks.base import BenchDataModule, BenchModule, Config, Task
from tasks.models import backbone_from_config


class ClassificationTask(Task):
    name = "classification"
    default_resolution = 224
    default_num_classes = 1000
    monitor = "top1"

    def build_model(self, cfg: Config) -> nn.Module:
        if cfg.get("pretrained") not in (None, "none"):
            from backbones.pretrained import PretrainedWeightsError, pretrained_classifier
            from benchmark.config import backbone_options

            try:
                return pretrained_classifier(cfg["backbone"], num_classes=cfg["num_classes"], **backbone_options(cfg))
            except PretrainedWeightsError as error:
                raise UserError(f"--pretrained: {error}") from None
        return ImageClassifier(backbone_from_config(cfg), cfg["num_classes"])

    def build_datamodule(self, cfg: Config) -> BenchDataModule:
        from tasks.classification.data import ImageNetDataModule

        return ImageNetDataModule.from_config(cfg)

    def build_module(self, cfg: Config, model: nn.Module) -> BenchModule:
        from tasks.classification.module import ClassificationModule

        return ClassificationModule.from_config(cfg, model)
