"""The papers' ablations as registered backbones, with the numbers the papers print beside them.

MobileNetV1 (Howard et al. 2017): Table 4, depthwise separable vs full convolutions; Table 5,
thinner (0.75 MobileNet) vs shallower (Shallow MobileNet). MobileNetV2 (Sandler et al. 2018):
Figure 6a, linear vs ReLU6 bottlenecks; Figure 6b, shortcuts between bottlenecks vs between
expansions vs none. Figure 6 plots top-1 curves over training without printing numbers, so its
rows carry none; Tables 4-5 print top-1, MAdds and params at 224x224 on ImageNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from backbones.mobilenet_v1 import mobilenet_v1
from backbones.mobilenet_v2 import mobilenet_v2


@dataclass(frozen=True)
class Ablation:
    """One network of an ablation: the backbone (a registered name) at a width, and the paper's
    figures for it (None where the paper only plots)."""

    study: str  # "V1 Table 4", ...
    variant: str  # the paper's row label
    backbone: str
    width: float
    top1: float | None
    madds_m: float | None
    params_m: float | None


# (name, builder, options it takes, description): the variants of mnv1/mnv2 the registry adds.
VARIANTS = (
    ("mnv1_full_conv", partial(mobilenet_v1, conv="full"), ("width", "output_stride", "padding"),
     "MobileNetV1 with full 3x3 convolutions (V1 paper, Table 4: Conv MobileNet)"),
    ("mnv1_shallow", partial(mobilenet_v1, shallow=True), ("width", "output_stride", "padding"),
     "MobileNetV1 without the five 14x14x512 layers (V1 paper, Table 5: Shallow MobileNet)"),
    ("mnv2_relu6_bottleneck", partial(mobilenet_v2, bottleneck_activation="relu6"), ("width", "expansion", "output_stride", "padding"),
     "MobileNetV2 with ReLU6 after each projection (V2 paper, Figure 6a)"),
    ("mnv2_shortcut_expansion", partial(mobilenet_v2, shortcut="expansion"), ("width", "expansion", "output_stride", "padding"),
     "MobileNetV2 with shortcuts between expansions (V2 paper, Figure 6b)"),
    ("mnv2_no_shortcut", partial(mobilenet_v2, shortcut="none"), ("width", "expansion", "output_stride", "padding"),
     "MobileNetV2 without residual connections (V2 paper, Figure 6b)"),
)  # fmt: skip

# The papers' ablation grid: every network of each study, the paper's own first.
ABLATIONS = (
    Ablation("V1 Table 4", "MobileNet", "mnv1", 1.0, 70.6, 569, 4.2),
    Ablation("V1 Table 4", "Conv MobileNet", "mnv1_full_conv", 1.0, 71.7, 4866, 29.3),
    Ablation("V1 Table 5", "0.75 MobileNet", "mnv1", 0.75, 68.4, 325, 2.6),
    Ablation("V1 Table 5", "Shallow MobileNet", "mnv1_shallow", 1.0, 65.3, 307, 2.9),
    Ablation("V2 Figure 6a", "Linear bottleneck", "mnv2", 1.0, None, None, None),
    Ablation("V2 Figure 6a", "ReLU6 in bottleneck", "mnv2_relu6_bottleneck", 1.0, None, None, None),
    Ablation("V2 Figure 6b", "Shortcut between bottlenecks", "mnv2", 1.0, None, None, None),
    Ablation("V2 Figure 6b", "Shortcut between expansions", "mnv2_shortcut_expansion", 1.0, None, None, None),
    Ablation("V2 Figure 6b", "No residual", "mnv2_no_shortcut", 1.0, None, None, None),
)
