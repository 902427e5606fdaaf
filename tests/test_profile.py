"""Counting: params and multiply-adds against the MobileNet papers' tables and torchvision."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torchvision
from torch import nn

from backbones.classifier import create_classifier
from backbones.counting import count_madds, count_params

M = 1_000_000

# TF-slim MobileNetV2 checkpoints table (tensorflow/models research/slim/nets/mobilenet, reported
# MACs in millions; see shared/reference/paper-numbers.md): {(width, resolution): MACs}.
SLIM_MNV2_MACS = {
    (1.4, 224): 582,
    (1.3, 224): 509,
    (1.0, 224): 300, (1.0, 192): 221, (1.0, 160): 154, (1.0, 128): 99, (1.0, 96): 56,
    (0.75, 224): 209, (0.75, 192): 153, (0.75, 160): 107, (0.75, 128): 69, (0.75, 96): 39,
    (0.5, 224): 97, (0.5, 192): 71, (0.5, 160): 50, (0.5, 128): 32, (0.5, 96): 18,
    (0.35, 224): 59, (0.35, 192): 43, (0.35, 160): 30, (0.35, 128): 20, (0.35, 96): 11,
}  # fmt: skip

# MobileNetV1 paper, Table 6 (width multipliers at 224) and Table 7 (resolutions at width 1.0):
# {(width, resolution): (million MAdds, million params as printed)}.
V1_TABLE = {
    (1.0, 224): (569, 4.2),
    (0.75, 224): (325, 2.6),
    (0.5, 224): (149, 1.3),
    (0.25, 224): (41, 0.5),
    (1.0, 192): (418, 4.2),
    (1.0, 160): (290, 4.2),
    (1.0, 128): (186, 4.2),
}


def madds_on_meta(build, *resolutions: int) -> list[int]:
    """MAdds at batch 1 with the model and input on the meta device, one count per resolution: the
    counter reads shapes only, so the count equals a CPU run's without doing the arithmetic (the CLI
    tests check CPU counts of the same model: 300,774,272 at 1.0/224)."""
    with torch.device("meta"):
        model = build()
    return [count_madds(model, torch.empty(1, 3, size, size, device="meta")) for size in resolutions]


def within_table(counted: int, reported_millions: float, *, relative: float = 0.02) -> bool:
    """Within 2%, or within 1M where the table's rounding to whole millions dominates."""
    return abs(counted - reported_millions * M) <= max(relative * reported_millions * M, 1 * M)


# -- conventions ------------------------------------------------------------------------------------
def test_count_params_counts_trainable_parameters_with_batchnorm_affine() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Linear(4, 2))
    assert count_params(model) == 3 * 4 * 9 + 2 * 4 + (4 * 2 + 2)  # BN running stats are buffers
    model[0].weight.requires_grad_(False)
    assert count_params(model) == 2 * 4 + (4 * 2 + 2)


def test_count_madds_counts_one_per_multiply_accumulate() -> None:
    assert count_madds(nn.Linear(10, 5), torch.zeros(1, 10)) == 10 * 5
    assert count_madds(nn.Conv2d(3, 8, 3, padding=1), torch.zeros(1, 3, 8, 8)) == 8 * 8 * 8 * 3 * 9
    assert count_madds(nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.zeros(1, 8, 8, 8)) == 8 * 8 * 8 * 9
    # BatchNorm, activations and pooling are not multiply-adds in the papers' tables.
    rest = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU6(), nn.AdaptiveAvgPool2d(1))
    assert count_madds(rest, torch.zeros(1, 8, 8, 8)) == 0


def test_count_madds_leaves_the_model_as_it_was() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_madds(model, torch.randn(1, 3, 8, 8))
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # counted in eval mode: BN statistics untouched


# -- MobileNetV2 ------------------------------------------------------------------------------------
def test_mnv2_madds_within_the_slim_table() -> None:
    """All 22 (width, resolution) configurations, each at its own input size."""
    counted = {}
    for width in sorted({w for w, _ in SLIM_MNV2_MACS}):
        resolutions = [r for w, r in SLIM_MNV2_MACS if w == width]
        counts = madds_on_meta(partial(create_classifier, "mnv2", width=width), *resolutions)
        counted.update({(width, r): count for r, count in zip(resolutions, counts, strict=True)})
    misses = {
        key: f"counted {counted[key] / M:.2f}M, table {reported}M"
        for key, reported in SLIM_MNV2_MACS.items()
        if not within_table(counted[key], reported)
    }
    assert not misses
    # Resolution matters: the count follows the input, not a fixed 224.
    assert counted[(1.0, 96)] < counted[(1.0, 128)] < counted[(1.0, 224)]


@pytest.mark.parametrize("width, resolution", [(1.0, 224), (1.4, 224), (0.35, 96), (0.75, 160)])
def test_mnv2_madds_equal_torchvision(width: float, resolution: int) -> None:
    ours = madds_on_meta(partial(create_classifier, "mnv2", width=width), resolution)
    assert ours == madds_on_meta(partial(torchvision.models.mobilenet_v2, width_mult=width), resolution)


# -- MobileNetV1 ------------------------------------------------------------------------------------
@pytest.mark.parametrize("width, resolution", sorted(V1_TABLE))
def test_mnv1_madds_and_params_match_the_paper(width: float, resolution: int) -> None:
    reported_madds, reported_params = V1_TABLE[(width, resolution)]
    (counted,) = madds_on_meta(partial(create_classifier, "mnv1", width=width), resolution)
    assert abs(counted - reported_madds * M) <= 0.02 * reported_madds * M, f"{counted / M:.2f}M"
    params = count_params(create_classifier("mnv1", width=width))
    assert round(params / M, 1) == reported_params, f"{params / M:.3f}M"
