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


def create_classifier(name: str, *, num_classes: int = 1000, **options) -> ImageClassifier:
    """A randomly initialised classifier over backbone ``name`` (ImageNet weights:
    ``backbones.pretrained.pretrained_classifier``, which builds on this module, not the reverse)."""
    return ImageClassifier(create_backbone(name, **options), num_classes)
