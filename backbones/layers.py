"""Building blocks shared by the MobileNet backbones."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NormFactory = Callable[[int], nn.Module]
ActivationFactory = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``value``.

    The rule of the TF MobileNet code (and torchvision's ``_make_divisible``).
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvNormAct(nn.Sequential):
    """Conv2d + norm + optional activation; 'same' padding derived from kernel and dilation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: NormFactory | None = nn.BatchNorm2d,
        activation_layer: ActivationFactory | None = nn.ReLU6,
    ) -> None:
        padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=norm_layer is None,
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer())
        super().__init__(*layers)
        self.out_channels = out_channels


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise + 1x1 pointwise, each followed by norm and activation (V1 paper, Figure 3)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: NormFactory = nn.BatchNorm2d,
        activation_layer: ActivationFactory = nn.ReLU,
    ) -> None:
        super().__init__(
            ConvNormAct(
                in_channels,
                in_channels,
                3,
                stride=stride,
                dilation=dilation,
                groups=in_channels,
                norm_layer=norm_layer,
                activation_layer=activation_layer,
            ),
            ConvNormAct(
                in_channels, out_channels, 1, norm_layer=norm_layer, activation_layer=activation_layer
            ),
        )
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck (V2 paper, Table 1 and Figure 3).

    1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection; the residual is kept
    only at stride 1 with equal channels. ``forward_with_expansion`` also returns the expanded
    tensor, which SSDLite taps on layer 15.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int,
        expand_ratio: float,
        dilation: int = 1,
        norm_layer: NormFactory = nn.BatchNorm2d,
        activation_layer: ActivationFactory = nn.ReLU6,
    ) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = (
            ConvNormAct(in_channels, hidden, 1, norm_layer=norm_layer, activation_layer=activation_layer)
            if expand_ratio != 1
            else None
        )
        self.depthwise = ConvNormAct(
            hidden,
            hidden,
            3,
            stride=stride,
            dilation=dilation,
            groups=hidden,
            norm_layer=norm_layer,
            activation_layer=activation_layer,
        )
        # Linear bottleneck: no activation after the projection (V2 paper, section 3.2).
        self.project = ConvNormAct(hidden, out_channels, 1, norm_layer=norm_layer, activation_layer=None)
        self.hidden_channels = hidden
        self.out_channels = out_channels

    def forward_with_expansion(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        expanded = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(expanded))
        if self.use_residual:
            out = out + x
        return out, expanded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_expansion(x)[0]
