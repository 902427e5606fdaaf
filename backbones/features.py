"""The backbone contract: named feature taps that task heads build themselves from."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureSpec:
    """One named feature map a backbone returns.

    ``name`` is nominal and stable (``"stride32"`` stays ``"stride32"`` when the backbone runs at
    output stride 16); ``stride`` is the real stride of the map for the options it was built with.
    """

    name: str
    channels: int
    stride: int


class FxLeaf(nn.Module):
    """A module the suite's torch.fx tracers keep as one call (DeepLab traces its backbone to trim
    it): its inside is traced by its own library's tracer, or picks its form at run time."""


class Backbone(nn.Module):
    """Base for every registered backbone.

    ``forward(x)`` returns ``{name: tensor}`` for every entry of ``feature_specs``. Every backbone
    declares at least ``stride16`` and ``stride32``; heads pick their taps through the
    ``detection_taps`` and ``segmentation_tap`` attributes rather than by index.
    """

    feature_specs: dict[str, FeatureSpec]
    # SSD/SSDLite attaches its first two prediction layers here (V2 paper, section 6.2).
    detection_taps: tuple[str, str] = ("stride16", "stride32")
    # DeepLabv3 puts its head here (V2 paper, section 6.3: V2* uses the 320-channel map).
    segmentation_tap: str = "stride32"
    # Channels of the pooled feature the classifier reads.
    num_features: int
    # Conv padding convention ("torch" symmetric or "tf" SAME); heads built on the backbone follow it.
    padding: str = "torch"
    # True where eval mode runs a reparameterised (fused) form, which timing, export and the
    # parameter count (``backbones.counting``) then see (MobileOne, RepViT, FastViT through timm).
    reparameterized: bool = False

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def make_classifier(self, num_classes: int) -> nn.Module:
        """The ImageNet head on the ``stride32`` map: global average pool, dropout, linear."""
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.2), nn.Linear(self.num_features, num_classes)
        )


# Output strides a backbone can be built at (dilation after it): DeepLab's 8 and 16, or none (32).
OUTPUT_STRIDES = (8, 16, 32)


def output_stride_plan(strides: list[int], output_stride: int) -> list[tuple[int, int]]:
    """Turn nominal layer strides into (stride, dilation) pairs for a target output stride.

    Once the running stride reaches ``output_stride``, later strides become dilation, as in
    DeepLab's MobileNet code: the layer that would have downsampled keeps the current rate and the
    rate grows by its stride for the layers after it.
    """
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    plan = []
    current, rate = 1, 1
    for stride in strides:
        if current >= output_stride and stride > 1:
            plan.append((1, rate))
            rate *= stride
        else:
            plan.append((stride, rate))
            current *= stride
    return plan
