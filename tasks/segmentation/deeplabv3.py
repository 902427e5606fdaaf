"""Mobile DeepLabv3 (V2 paper, section 6.3): a DeepLabv3 head on one named backbone tap.

Reading order: the trimmed backbone, the head's branches, the two heads (ASPP and the paper's
light head), the network, then Table 7 as data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from backbones.features import Backbone, FeatureSpec, FxLeaf
from backbones.layers import Conv2dTFSame, ConvNormAct

HEAD_CHANNELS = 256  # DeepLabv3's ASPP depth (Chen et al. 2017, section 3.3)
# Atrous rates of ASPP at output stride 16; doubled at output stride 8 (DeepLabv3, section 3.3).
ASPP_RATES_AT_OS16 = (6, 12, 18)


class _Tracer(fx.Tracer):
    """Keeps TF-padded convs as modules, so the trimmed backbone still holds ``nn.Conv2d``s, and
    ``FxLeaf`` parts (timm bodies) whole."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (Conv2dTFSame, FxLeaf)) or super().is_leaf_module(m, module_qualified_name)


def backbone_up_to(backbone: Backbone, tap: str) -> fx.GraphModule:
    """The part of ``backbone`` that computes ``tap``, returning that tensor alone.

    The V2* head reads the 320-channel map (V2 paper, section 6.3), so MobileNetV2's last 1x1 conv
    to 1280 channels is neither run nor counted: Table 7's 2.11M params and 2.75B MAdds exclude it.
    Traced with torch.fx and pruned of everything the tap does not depend on; submodule names stay
    those of the backbone, so state-dict keys (pretrained weights, checkpoints) are unchanged.
    """
    if tap not in backbone.feature_specs:
        raise ValueError(f"backbone has no tap {tap!r} (it has: {', '.join(backbone.feature_specs)})")
    tracer = _Tracer()
    traced = fx.GraphModule(backbone, tracer.trace(backbone), backbone.__class__.__name__)
    output = next(node for node in traced.graph.nodes if node.op == "output")
    output.args = (output.args[0][tap],)
    traced.graph.eliminate_dead_code()
    traced.graph.lint()
    traced.recompile()
    traced.delete_all_unused_submodules()
    return traced


class ImagePooling(nn.Sequential):
    """Image-level features: global average pool, 1x1 conv, broadcast back (DeepLabv3, section 3.3)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1), ConvNormAct(in_channels, out_channels, 1, activation_layer=nn.ReLU)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = super().forward(x)
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class DeepLabHead(nn.Module):
    """Parallel branches on the feature map, concatenated and projected to 256 channels.

    With ``rates`` it is ASPP: a 1x1 conv, one 3x3 atrous conv per rate and image pooling. Without,
    it is the paper's on-device head: "we removed the ASPP module" keeping the 1x1 conv and the
    image pooling branch (V2 paper, section 6.3; TF DeepLab's ``aspp_with_batch_norm`` path).
    """

    def __init__(
        self,
        in_channels: int,
        rates: tuple[int, ...] = (),
        channels: int = HEAD_CHANNELS,
        *,
        padding: str = "torch",
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvNormAct(in_channels, channels, 1, activation_layer=nn.ReLU)]
        branches += [
            ConvNormAct(in_channels, channels, 3, dilation=rate, activation_layer=nn.ReLU, padding=padding)
            for rate in rates
        ]
        branches.append(ImagePooling(in_channels, channels))
        self.branches = nn.ModuleList(branches)
        self.rates = tuple(rates)
        self.project = nn.Sequential(
            ConvNormAct(len(branches) * channels, channels, 1, activation_layer=nn.ReLU),
            # TF DeepLab's concat_projection keeps 90% of the activations while training.
            nn.Dropout(0.1),
        )
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DeepLabV3(nn.Module):
    """Backbone tap -> DeepLab head -> 1x1 classifier -> bilinear upsampling to the input size.

    The upsampling is part of ``forward`` so latency measurements include it. ``feature`` is the
    tap's spec (its real stride decides the atrous rates).
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        *,
        tap: str | None = None,
        aspp: bool = False,
        padding: str | None = None,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        tap = tap or backbone.segmentation_tap
        # TF DeepLab upsamples the logits with align_corners=True (its checkpoints expect it).
        self.align_corners = align_corners
        # Head convs pad like the backbone unless told otherwise ("tf" for TF checkpoints).
        self.padding = padding or backbone.padding
        self.feature: FeatureSpec = backbone.feature_specs[tap]
        self.backbone = backbone_up_to(backbone, tap)
        rates = tuple(rate * 16 // self.feature.stride for rate in ASPP_RATES_AT_OS16) if aspp else ()
        self.head = DeepLabHead(self.feature.channels, rates, padding=self.padding)
        self.classifier = nn.Conv2d(self.head.out_channels, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.head(self.backbone(x)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)


@dataclass(frozen=True)
class Table7Row:
    """One row of the V2 paper's Table 7 (PASCAL VOC 2012 val, 513x513 inputs)."""

    backbone: str
    feature: str  # "body": the backbone's segmentation tap (V2*: the 320-channel map)
    output_stride: int
    aspp: bool
    mf: bool  # multi-scale (0.5 to 1.75) and flipped inputs; MAdds then count all of them
    miou: float
    params_m: float
    madds_b: float


# V2 paper, Table 7 (the ResNet-101 rows have no backbone here).
TABLE7 = (
    Table7Row("mnv1", "body", 16, True, False, 75.29, 11.15, 14.25),
    Table7Row("mnv1", "body", 8, True, True, 78.56, 11.15, 941.9),
    Table7Row("mnv2", "body", 16, True, False, 75.70, 4.52, 5.8),
    Table7Row("mnv2", "body", 8, True, True, 78.42, 4.52, 387.0),
    Table7Row("mnv2", "body", 16, False, False, 75.32, 2.11, 2.75),
    Table7Row("mnv2", "body", 8, False, True, 77.33, 2.11, 152.6),
)


def table7_row(
    backbone: str, feature: str, output_stride: int, aspp: bool, mf: bool = False
) -> Table7Row | None:
    key = (backbone, feature, output_stride, aspp, mf)
    for row in TABLE7:
        if (row.backbone, row.feature, row.output_stride, row.aspp, row.mf) == key:
            return row
    return None


def deeplab_for_tflite(facts: Any, name: str, options: dict[str, Any]) -> DeepLabV3:
    """The DeepLabV3 an official TF DeepLab file describes (``tasks.tflite.importer`` fills it):
    no ASPP (the paper's light head), the file's output stride and upsampling."""
    from backbones import get_entry

    backbone = get_entry(name).builder(output_stride=facts.output_stride, **options)
    return DeepLabV3(backbone, facts.num_classes, aspp=False, align_corners=facts.align_corners)
