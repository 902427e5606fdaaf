"""Building blocks shared by the MobileNet backbones."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

NormFactory = Callable[[int], nn.Module]
ActivationFactory = Callable[[], nn.Module]

# "torch": symmetric padding (k - 1) // 2 * d, PyTorch's and torchvision's convention.
# "tf": TensorFlow's "SAME", which the official TF/TFLite MobileNet checkpoints were trained with.
PADDINGS = ("torch", "tf")


def check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    return padding


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) along one axis of length ``size``.

    total = max((ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0), and the
    odd pixel goes after: a stride-2 3x3 conv on an even size pads right/bottom only, on an odd
    size both sides (TF's ``nn_ops`` convention, tensorflow/core/framework/kernel_shape_util.cc).
    """
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@torch.fx.wrap
def conv2d_tf_same(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """A conv with TF "SAME" padding for ``x``'s size (a leaf under torch.fx tracing).

    Where that padding is symmetric (odd sizes such as 513 under stride 2) the conv pads itself: an
    exported graph then keeps one Conv, where an explicit Pad made ONNX Runtime leave its blocked
    (NCHWc) layout around each one (Pad and the layout reorders took 22 % of DeepLab's time at 513).
    """
    kernel = weight.shape[-2:]
    top, bottom = tf_same_padding(int(x.shape[-2]), int(kernel[0]), stride[0], dilation[0])
    left, right = tf_same_padding(int(x.shape[-1]), int(kernel[1]), stride[1], dilation[1])
    if top == bottom and left == right:
        return F.conv2d(x, weight, bias, stride, (top, left), dilation, groups)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, dilation, groups)


class Conv2dTFSame(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding computed from the input size at each call.

    A subclass with no extra parameters, so state-dict keys are those of ``nn.Conv2d``. (timm's
    ``Conv2dSame`` does the same but computes the padding with ``math.ceil`` on traced sizes, which
    ``torch.fx.symbolic_trace`` rejects; DeepLab's trimmed backbone is traced.)
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["padding"] = 0
        super().__init__(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_tf_same(x, self.weight, self.bias, self.stride, self.dilation, self.groups)


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
    padding: str = "torch",
) -> nn.Conv2d:
    """A conv with 'same' output size; ``padding="tf"`` pads like TF where that differs.

    For stride 1 and an odd kernel both conventions are the same symmetric padding, so only
    strided (or even-kernel) convs become ``Conv2dTFSame``.
    """
    check_padding(padding)
    if padding == "tf" and (stride > 1 or kernel_size % 2 == 0):
        return Conv2dTFSame(
            in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, groups=groups, bias=bias
        )
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2 * dilation,
        dilation=dilation,
        groups=groups,
        bias=bias,
    )


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never below 90% of ``value``.

    The rule of the TF MobileNet code (and torchvision's ``_make_divisible``).
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvNormAct(nn.Sequential):
    """Conv2d + norm + optional activation; 'same' padding derived from kernel and dilation.

    ``padding="tf"`` uses TF's "SAME" rule (see ``conv2d``) for official TF checkpoints.
    """

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
        padding: str = "torch",
    ) -> None:
        layers: list[nn.Module] = [
            conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                dilation=dilation,
                groups=groups,
                bias=norm_layer is None,
                padding=padding,
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
        padding: str = "torch",
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
                padding=padding,
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

    The V2 paper's ablations (Figure 6): ``project_activation`` puts a non-linearity after the
    projection (6a, "ReLU6 in bottleneck"); ``residual=False`` drops the shortcut between
    bottlenecks (6b, "no residual", or the network adds shortcuts between expansions instead,
    through ``forward_parts``).
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
        padding: str = "torch",
        project_activation: ActivationFactory | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = residual and stride == 1 and in_channels == out_channels
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
            padding=padding,
        )
        # Linear bottleneck: no activation after the projection (V2 paper, section 3.2).
        self.project = ConvNormAct(hidden, out_channels, 1, norm_layer=norm_layer, activation_layer=project_activation)
        self.hidden_channels = hidden
        self.out_channels = out_channels

    def forward_with_expansion(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, expanded, _ = self.forward_parts(x)
        return out, expanded

    def forward_parts(
        self, x: torch.Tensor, shortcut: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(output, expansion, depthwise output); ``shortcut`` (the previous block's depthwise
        output) is added to this block's, a shortcut between expansions (V2 paper, Figure 6b)."""
        expanded = self.expand(x) if self.expand is not None else x
        hidden = self.depthwise(expanded)
        if shortcut is not None:
            hidden = hidden + shortcut
        out = self.project(hidden)
        if self.use_residual:
            out = out + x
        return out, expanded, hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_expansion(x)[0]
