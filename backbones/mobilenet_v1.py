"""MobileNetV1 (Howard et al., arXiv 1704.04861), built from the paper's Table 1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backbones.features import Backbone, FeatureSpec, output_stride_plan
from backbones.layers import (
    ActivationFactory,
    ConvNormAct,
    DepthwiseSeparable,
    NormFactory,
    check_padding,
    make_divisible,
)
from backbones.mobilenet_v2 import init_weights


class MobileNetV1(Backbone):
    """MobileNetV1 body: a 3x3 stem and 13 depthwise-separable layers.

    Taps: ``stride4``, ``stride8``, ``stride16`` (512 channels, where SSDLite's first head
    attaches) and ``stride32`` (1024 channels).

    The V1 paper's ablations: ``conv="full"`` makes every layer a full 3x3 convolution ("Conv
    MobileNet", Table 4); ``shallow=True`` drops the five 14x14x512 layers ("Shallow MobileNet",
    Table 5).
    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        output_stride: int = 32,
        norm_layer: NormFactory = nn.BatchNorm2d,
        activation_layer: ActivationFactory = nn.ReLU,
        padding: str = "torch",
        conv: str = "separable",
        shallow: bool = False,
    ) -> None:
        super().__init__()
        self.padding = check_padding(padding)
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {', '.join(CONVS)}, got {conv!r}")
        layers = SHALLOW_LAYERS if shallow else LAYERS
        stem_channels = make_divisible(32 * width)
        plan = output_stride_plan([2] + [layer.s for layer in layers], output_stride)
        self.stem = ConvNormAct(
            3,
            stem_channels,
            3,
            stride=plan[0][0],
            norm_layer=norm_layer,
            activation_layer=activation_layer,
            padding=padding,
        )
        blocks = []
        specs: dict[str, FeatureSpec] = {}
        self._tap_blocks: dict[int, str] = {}
        in_channels, nominal, real = stem_channels, 2, plan[0][0]
        block_type = DepthwiseSeparable if conv == "separable" else ConvNormAct
        for index, (layer, (stride, dilation)) in enumerate(zip(layers, plan[1:], strict=True)):
            out_channels = make_divisible(layer.c * width)
            blocks.append(
                block_type(
                    in_channels,
                    out_channels,
                    stride=stride,
                    dilation=dilation,
                    norm_layer=norm_layer,
                    activation_layer=activation_layer,
                    padding=padding,
                )
            )
            in_channels = out_channels
            nominal *= layer.s
            real *= stride
            if nominal in (4, 8, 16, 32):
                self._tap_blocks = {k: v for k, v in self._tap_blocks.items() if v != f"stride{nominal}"}
                self._tap_blocks[index] = f"stride{nominal}"
                specs[f"stride{nominal}"] = FeatureSpec(f"stride{nominal}", out_channels, real)
        self.blocks = nn.ModuleList(blocks)
        self.feature_specs = specs
        self.num_features = in_channels
        init_weights(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        x = self.stem(x)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self._tap_blocks:
                features[self._tap_blocks[index]] = x
        return features


@dataclass(frozen=True)
class Layer:
    """One depthwise-separable layer of Table 1: output channels c, depthwise stride s."""

    c: int
    s: int


# MobileNetV1 paper, Table 1. The table prints stride 2 for the last depthwise layer, but its input
# is already 7x7 and the reference code (TF-slim) uses stride 1 there; so do we.
LAYERS = (
    Layer(64, 1),
    Layer(128, 2),
    Layer(128, 1),
    Layer(256, 2),
    Layer(256, 1),
    Layer(512, 2),
    *[Layer(512, 1)] * 5,
    Layer(1024, 2),
    Layer(1024, 1),
)


# "Shallow MobileNet" (V1 paper, Table 5): "remove the 5 layers of separable filters with feature
# size 14 x 14 x 512 in Table 1".
SHALLOW_LAYERS = LAYERS[:6] + LAYERS[11:]
# Depthwise separable (the paper's) or full 3x3 convolutions ("Conv MobileNet", Table 4).
CONVS = ("separable", "full")


def mobilenet_v1(*, width: float = 1.0, output_stride: int = 32, **layer_options) -> MobileNetV1:
    return MobileNetV1(width=width, output_stride=output_stride, **layer_options)
