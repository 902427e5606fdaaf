"""The papers' ablations: V1 Tables 4-5 counted against the papers, V2 Figure 6's variants computing
what they say, the ablations sweep tier, and the ablation table beside the papers' figures."""

from __future__ import annotations

import pytest
import torch

from backbones import create_backbone, get_entry, list_backbones
from backbones.ablations import ABLATIONS
from backbones.classifier import ImageClassifier, create_classifier
from backbones.counting import count_madds, count_params
from backbones.mobilenet_v2 import MobileNetV2
from benchmark.leaderboards.ablations import ablation_table
from benchmark.sweeps.plan import ABLATIONS as ABLATION_TIER
from benchmark.sweeps.plan import FULL, make_plan
from tasks.facts import TASK_NAMES
from tests.test_backbones import randomised

# Counted at 224x224 with 1000 classes (BatchNorm affine included, torchvision's convention).
COUNTED = {
    ("mnv1", 1.0): (568_740_352, 4_231_976),
    ("mnv1_full_conv", 1.0): (4_867_293_184, 29_294_088),
    ("mnv1", 0.75): (325_400_448, 2_585_560),
    ("mnv1_shallow", 1.0): (307_323_392, 2_887_976),
}


@pytest.mark.parametrize("ablation", [a for a in ABLATIONS if a.madds_m is not None], ids=lambda a: a.variant)
def test_v1_ablations_count_as_the_papers_tables(ablation) -> None:
    """V1 Table 4: 569M / 4.2M vs 4866M / 29.3M; Table 5: 325M / 2.6M vs 307M / 2.9M."""
    with torch.device("meta"):
        model = create_classifier(ablation.backbone, width=ablation.width)
    madds = count_madds(model, torch.empty(1, 3, 224, 224, device="meta"))
    params = count_params(model)
    assert (madds, params) == COUNTED[(ablation.backbone, ablation.width)]
    assert round(madds / 1e6) == pytest.approx(ablation.madds_m, abs=1)  # the paper prints whole millions
    assert round(params / 1e6, 1) == ablation.params_m


def test_shallow_drops_the_five_14x14x512_layers_and_full_conv_keeps_the_taps() -> None:
    assert len(create_backbone("mnv1").blocks) - len(create_backbone("mnv1_shallow").blocks) == 5
    full = create_backbone("mnv1_full_conv")
    assert all(isinstance(block[0], torch.nn.Conv2d) and block[0].kernel_size == (3, 3) and block[0].groups == 1 for block in full.blocks)
    assert {k: (v.channels, v.stride) for k, v in full.feature_specs.items()} == {
        k: (v.channels, v.stride) for k, v in create_backbone("mnv1").feature_specs.items()
    }


V2_VARIANTS = ("mnv2_relu6_bottleneck", "mnv2_shortcut_expansion", "mnv2_no_shortcut")


@pytest.mark.parametrize("name", V2_VARIANTS)
def test_v2_variants_have_mnv2s_weights_and_counts_but_compute_otherwise(name: str) -> None:
    """Figure 6 changes non-linearities and additions, neither of which has weights or MAdds."""
    torch.manual_seed(0)
    reference = randomised(ImageClassifier(create_backbone("mnv2", width=0.35), 10))
    variant = ImageClassifier(create_backbone(name, width=0.35), 10).eval()
    variant.load_state_dict(reference.state_dict())  # strict: the same modules
    image = torch.randn(1, 3, 64, 64)
    assert count_madds(variant, image) == count_madds(reference, image) and count_params(variant) == count_params(reference)
    with torch.no_grad():
        ours, theirs = variant.backbone(image)["stride32_body"], reference.backbone(image)["stride32_body"]
    assert (ours - theirs).abs().max() > 0.01 * theirs.abs().max()  # float noise is ~1e-7 of it


def test_v2_shortcut_placements() -> None:
    paper, none, expansion = (create_backbone(n) for n in ("mnv2", "mnv2_no_shortcut", "mnv2_shortcut_expansion"))
    # Between bottlenecks: every stride-1 block with equal in/out channels (10 of 17).
    assert [i for i, b in enumerate(paper.blocks) if b.use_residual] == [2, 4, 5, 7, 8, 9, 11, 12, 14, 15]
    assert not any(b.use_residual for b in none.blocks) and not any(b.use_residual for b in expansion.blocks)
    # Between expansions: where a block's depthwise output has its predecessor's shape.
    assert sorted(expansion._expansion_shortcuts) == [5, 8, 9, 10, 12, 15, 16]
    assert all(expansion.blocks[i].hidden_channels == expansion.blocks[i - 1].hidden_channels for i in expansion._expansion_shortcuts)
    assert isinstance(create_backbone("mnv2_relu6_bottleneck").blocks[1].project[-1], torch.nn.ReLU6)


@pytest.mark.parametrize("option, value", [("shortcut", "between"), ("bottleneck_activation", "gelu")])
def test_unknown_ablation_values_are_refused(option: str, value: str) -> None:
    with pytest.raises(ValueError, match=option):
        MobileNetV2(**{option: value})


def test_ablations_tier_plans_the_papers_grid_and_other_tiers_leave_it_out() -> None:
    plan = make_plan(ABLATION_TIER, data=["classification=/data/imagenet"], registered_tasks=TASK_NAMES, gpu=False)
    cells = [(c.task, c.backbone, c.width, c.resolution) for c in plan.cells]
    assert cells == [
        ("classification", "mnv1", 1.0, 224), ("classification", "mnv1", 0.75, 224),
        ("classification", "mnv1_full_conv", 1.0, 224), ("classification", "mnv1_shallow", 1.0, 224),
        ("classification", "mnv2", 1.0, 224), ("classification", "mnv2_relu6_bottleneck", 1.0, 224),
        ("classification", "mnv2_shortcut_expansion", 1.0, 224), ("classification", "mnv2_no_shortcut", 1.0, 224),
    ]  # fmt: skip
    ablation_names = {n for n in list_backbones() if get_entry(n).ablation}
    assert ablation_names == {"mnv1_full_conv", "mnv1_shallow", *V2_VARIANTS}
    full = make_plan(FULL, stages="profile", registered_tasks=TASK_NAMES, gpu=False)
    assert not ablation_names & {c.backbone for c in full.cells}


def result(backbone: str, width: float, top1: float, *, synthetic: bool = False, created: str = "2026-12-01T00:00:00+00:00") -> dict:
    return {
        "kind": "result", "task": "classification", "backbone": backbone, "width": width, "resolution": 224,
        "metrics": {"top1": top1}, "madds": 307_323_392, "params": 2_887_976, "created": created,
        "dataset": {"name": "ImageNet", "synthetic": synthetic},
        "environment": {"torch": "2.9", "device": "cuda", "gpu": "H100", "commit": "abc1234"},
    }  # fmt: skip


def test_ablation_table_sets_results_beside_the_papers_figures() -> None:
    assert ablation_table([]) is None
    assert ablation_table([result("mnv1_shallow", 1.0, 60.0, synthetic=True)]) is None  # embedded data: not the papers'
    table = ablation_table([result("mnv1_shallow", 1.0, 60.0, created="2026-12-01T00:00:00+00:00"),
                            result("mnv1_shallow", 1.0, 64.9, created="2026-12-02T00:00:00+00:00")])  # fmt: skip
    rows = {row[1]: row for row in table.rows}
    assert len(table.rows) == len(ABLATIONS)
    shallow = rows["Shallow MobileNet"]
    assert shallow[3:6] == ("65.3", "307", "2.9") and shallow[6:9] == ("64.90", "307", "2.89")
    assert "ImageNet" in shallow[9] and "abc1234" in shallow[9]
    assert rows["Conv MobileNet"][6:] == ("—", "—", "—", "not run (bench sweep --tier ablations)")
    assert rows["No residual"][3] == "plotted only"
