"""MobileNetV2 (Sandler et al., CVPR 2018), built from the paper's Table 2."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backbones.features import Backbone, FeatureSpec, output_stride_plan
from backbones.layers import (
    ActivationFactory,
    ConvNormAct,
    InvertedResidual,
    NormFactory,
    check_padding,
    make_divisible,
)


def check_settings(*, width: float, expansion: float, channel_divisor: int, bottleneck_activation: str,
                   shortcut: str) -> None:
    """The constructor's arguments, each refused with what it must be."""
    if bottleneck_activation not in BOTTLENECK_ACTIVATIONS:
        raise ValueError(f"bottleneck_activation must be one of {', '.join(BOTTLENECK_ACTIVATIONS)}, got {bottleneck_activation!r}")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    if expansion <= 0:
        raise ValueError(f"expansion must be > 0, got {expansion}")
    if channel_divisor < 1:
        raise ValueError(f"channel_divisor must be >= 1, got {channel_divisor}")


class MobileNetV2(Backbone):
    """MobileNetV2 body with named taps.

    Taps: ``stride4``, ``stride8``, ``stride16`` (block outputs), ``stride16_expand`` (the 1x1
    expansion inside the first stride-32 block, "layer 15" of the paper, where SSDLite attaches),
    ``stride32_body`` (the 320-channel map before the last 1x1 conv, the paper's "V2*") and
    ``stride32`` (the final 1x1 conv output, 1280 channels).

    The V2 paper's ablations (Figure 6): ``bottleneck_activation="relu6"`` (6a: ReLU6 after the
    projection instead of the linear bottleneck) and ``shortcut`` (6b): ``"bottleneck"`` (the
    paper's), ``"none"``, or ``"expansion"``: shortcuts between the expanded layers instead, each
    block's depthwise output adding the previous block's where their shapes agree (the classic
    residual around the narrow part: projection, next expansion, depthwise).
    """

    detection_taps = ("stride16_expand", "stride32")
    segmentation_tap = "stride32_body"

    def __init__(
        self,
        *,
        width: float = 1.0,
        expansion: float = 6.0,
        output_stride: int = 32,
        norm_layer: NormFactory = nn.BatchNorm2d,
        activation_layer: ActivationFactory = nn.ReLU6,
        padding: str = "torch",
        channel_divisor: int = 8,
        stages: tuple[Stage, ...] | None = None,
        bottleneck_activation: str = "linear",
        shortcut: str = "bottleneck",
    ) -> None:
        super().__init__()
        self.padding = check_padding(padding)
        check_settings(width=width, expansion=expansion, channel_divisor=channel_divisor,
                       bottleneck_activation=bottleneck_activation, shortcut=shortcut)
        stages = stages or STAGES
        # Channels are rounded to multiples of ``channel_divisor`` (TF's ``divisible_by``: 8; TF
        # DeepLab's MobileNetV2 below depth multiplier 1 uses 1, e.g. 12 channels at width 0.5).
        stem_channels = make_divisible(32 * width, channel_divisor)
        # "we apply width multiplier to all layers except the very last convolutional layer"
        # for multipliers below one (V2 paper, section 6.1); torchvision: 1280 * max(1, width).
        last_channels = make_divisible(1280 * max(1.0, width), channel_divisor)

        block_settings = [
            (stage.t if stage.t == 1 else expansion, make_divisible(stage.c * width, channel_divisor), stage.s if i == 0 else 1)
            for stage in stages
            for i in range(stage.n)
        ]
        plan = output_stride_plan([2] + [s for _, _, s in block_settings], output_stride)

        self.stem = ConvNormAct(3, stem_channels, 3, stride=plan[0][0], norm_layer=norm_layer,
                                activation_layer=activation_layer, padding=padding)
        blocks = []
        in_channels = stem_channels
        for (t, c, _), (stride, dilation) in zip(block_settings, plan[1:], strict=True):
            blocks.append(InvertedResidual(
                in_channels, c, stride=stride, expand_ratio=t, dilation=dilation, norm_layer=norm_layer,
                activation_layer=activation_layer, padding=padding,
                project_activation=activation_layer if bottleneck_activation == "relu6" else None,
                residual=shortcut == "bottleneck",
            ))  # fmt: skip
            in_channels = c
        self.blocks = nn.ModuleList(blocks)
        # Shortcuts between expansions: into each block whose depthwise output has the previous
        # block's shape (stride 1, the same expanded width).
        self._expansion_shortcuts = frozenset(
            i
            for i in range(1, len(blocks))
            if shortcut == "expansion"
            and block_settings[i][2] == 1  # nominal: dilation (output stride 8/16) keeps the same shortcuts
            and blocks[i].hidden_channels == blocks[i - 1].hidden_channels
        )
        self.last_conv = ConvNormAct(in_channels, last_channels, 1, norm_layer=norm_layer, activation_layer=activation_layer)
        self.num_features = last_channels
        self.feature_specs = self._name_taps(block_settings, plan)
        init_weights(self)

    def _name_taps(self, block_settings: list[tuple[float, int, int]], plan: list[tuple[int, int]]) -> dict[str, FeatureSpec]:
        """The taps' specs, named by nominal stride with the real stride from the output-stride plan;
        remembers which blocks they follow (``forward``)."""
        nominal, real = 2, plan[0][0]
        tap_after: dict[int, str] = {}
        specs: dict[str, FeatureSpec] = {}
        for index, ((_, c, s), (stride, _)) in enumerate(zip(block_settings, plan[1:], strict=True)):
            if s == 2 and nominal == 16:
                self._expand_tap_block = index
                specs["stride16_expand"] = FeatureSpec("stride16_expand", self.blocks[index].hidden_channels, real)
            nominal *= s
            real *= stride
            if nominal in (4, 8, 16):
                tap_after[nominal] = index
                specs[f"stride{nominal}"] = FeatureSpec(f"stride{nominal}", c, real)
        self._tap_blocks = {index: f"stride{s}" for s, index in tap_after.items()}
        specs["stride32_body"] = FeatureSpec("stride32_body", block_settings[-1][1], real)
        specs["stride32"] = FeatureSpec("stride32", self.num_features, real)
        return specs

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        hidden = None
        for index, block in enumerate(self.blocks):
            if self._expansion_shortcuts:
                shortcut = hidden if index in self._expansion_shortcuts else None
                x, expanded, hidden = block.forward_parts(x, shortcut)
                if index == self._expand_tap_block:
                    features["stride16_expand"] = expanded
            elif index == self._expand_tap_block:
                x, features["stride16_expand"] = block.forward_with_expansion(x)
            else:
                x = block(x)
            if index in self._tap_blocks:
                features[self._tap_blocks[index]] = x
        features["stride32_body"] = x
        features["stride32"] = self.last_conv(x)
        return features


def init_weights(module: nn.Module) -> None:
    """torchvision's MobileNet initialisation: Kaiming fan-out convs, unit BN, small linear."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# The V2 paper's Figure 6 ablations (the first of each is the paper's network).
BOTTLENECK_ACTIVATIONS = ("linear", "relu6")
SHORTCUTS = ("bottleneck", "expansion", "none")


@dataclass(frozen=True)
class Stage:
    """One row of Table 2: expansion t, output channels c, repeats n, first stride s."""

    t: int
    c: int
    n: int
    s: int


# MobileNetV2 paper, Table 2 (the stem conv2d 3x3/32/s2 and the final conv2d 1x1/1280 are built above).
STAGES = (
    Stage(t=1, c=16, n=1, s=1),
    Stage(t=6, c=24, n=2, s=2),
    Stage(t=6, c=32, n=3, s=2),
    Stage(t=6, c=64, n=4, s=2),
    Stage(t=6, c=96, n=3, s=1),
    Stage(t=6, c=160, n=3, s=2),
    Stage(t=6, c=320, n=1, s=1),
)


def mobilenet_v2(
    *, width: float = 1.0, expansion: float = 6.0, output_stride: int = 32, **layer_options
) -> MobileNetV2:
    return MobileNetV2(width=width, expansion=expansion, output_stride=output_stride, **layer_options)
