"""The papers' ablations as registered backbones, with the numbers the papers print beside them.

MobileNetV1 (Howard et al. 2017): Table 4, depthwise separable vs full convolutions; Table 5,
thinner (0.75 MobileNet) vs shallower (Shallow MobileNet). MobileNetV2 (Sandler et al. 2018):
Figure 6a, linear vs ReLU6 bottlenecks; Figure 6b, shortcuts between bottlenecks vs between
expansions vs none. Figure 6 plots top-1 curves over training without printing numbers, so its
rows carry none; Tables 4-5 print top-1, MAdds and params at 224x224 on ImageNet. Data only (no
torch): the sweep planner reads the grid while the command line is parsed; the registry builds them.
"""

from __future__ import annotations

from dataclasses import dataclass


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
