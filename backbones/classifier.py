"""Backbone + ImageNet head, the model the classification task trains and profiles."""

from __future__ import annotations

import torch
from torch import nn

from backbones import create_backbone
from backbones.features import Backbone


class ImageClassifier(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = backbone.make_classifier(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)["stride32"])


def create_classifier(name: str, *, num_classes: int = 1000, pretrained: str | None = None, **options) -> ImageClassifier:
    """A classifier over backbone ``name``; ``pretrained="torchvision"`` loads torchvision's ImageNet weights."""
    if pretrained is None:
        return ImageClassifier(create_backbone(name, **options), num_classes)
    from backbones.pretrained import pretrained_classifier

    return pretrained_classifier(name, num_classes=num_classes, **options)
