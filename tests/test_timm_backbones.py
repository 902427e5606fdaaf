"""``--backbone timm:NAME``: taps per family, the three tasks at a tiny size, timm's dilation or a
one-line refusal, the classifier against timm's own model, and reparameterisation in eval mode."""

from __future__ import annotations

import pytest
import timm
import torch
from cli_helpers import bench

from backbones import UnknownBackboneError, get_entry, list_prefixes
from backbones.classifier import create_classifier
from backbones.counting import count_madds, count_params
from backbones.errors import UserError
from backbones.timm_backbones import FAMILIES, timm_backbone
from tasks import get_task
from tasks.factory import build_model

SIZE = 64  # stride-32 maps of 2x2: enough for every head, fast on 2 cores


# Per family: where SSDLite's first head attaches (module path, channels), or stride16 where the
# strided conv opens the block; the stride-32 maps (DeepLab's body map, the classifier's input).
TAPS = {
    "mobilenetv4_conv_small": (("blocks.3.0.pw_exp", 576), 96, 960, 960),
    "efficientnet_lite0": (("blocks.5.0.bn1", 672), 112, 320, 1280),
    "ghostnet_100": (("blocks.7.0.ghost1", 672), 80, 160, 960),
    "mobileone_s0": (None, 256, 1024, 1024),
    "fastvit_t8": (None, 192, 384, 768),
}


@pytest.mark.parametrize("name", TAPS)
def test_taps_follow_feature_info_and_the_expansion_of_the_strided_block(name: str) -> None:
    expansion, c16, body, last = TAPS[name]
    backbone = timm_backbone(name)
    specs = {k: (v.channels, v.stride) for k, v in backbone.feature_specs.items()}
    assert specs["stride16"] == (c16, 16) and specs["stride32_body"] == (body, 32) and specs["stride32"] == (last, 32)
    if expansion is None:
        assert "stride16_expand" not in specs and backbone.detection_taps == ("stride16", "stride32")
    else:
        assert backbone.tap_modules["stride16_expand"] == expansion[0]
        assert specs["stride16_expand"] == (expansion[1], 16)
        assert backbone.detection_taps == ("stride16_expand", "stride32")
    with torch.no_grad():
        out = backbone.eval()(torch.zeros(1, 3, SIZE, SIZE))
    assert {k: (v.shape[1], SIZE // v.shape[-1]) for k, v in out.items()} == specs


CASES = [
    ("mobilenetv4_conv_small", "classification", None),
    ("mobilenetv4_conv_small", "detection", None),
    ("mobilenetv4_conv_small", "segmentation", 32),  # MobileNetV4 builds only at output stride 32
    ("efficientnet_lite0", "detection", None),
    ("efficientnet_lite0", "segmentation", 8),
    ("mobileone_s0", "segmentation", 16),
]


@pytest.mark.parametrize("name, task_name, output_stride", CASES, ids=[f"{n}-{t}" for n, t, _ in CASES])
def test_every_task_trains_and_infers_on_a_timm_backbone(name: str, task_name: str, output_stride: int | None) -> None:
    torch.manual_seed(0)
    task = get_task(task_name)
    cfg = {**task.defaults(), "backbone": f"timm:{name}", "resolution": SIZE, "num_classes": 3, "output_stride": output_stride}
    model = build_model(task, cfg)
    images = torch.randn(2, 3, SIZE, SIZE)
    out = model(images)
    loss = sum(o.float().square().mean() for o in (out if isinstance(out, tuple) else (out,)))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        out = model.eval()(images)
    for tensor in out if isinstance(out, tuple) else (out,):
        assert torch.isfinite(tensor).all()
    if task_name == "segmentation":
        assert out.shape == (2, 3, SIZE, SIZE) and model.feature.stride == (output_stride or 16)


def test_deeplab_reads_the_last_feature_level_and_neither_runs_nor_counts_the_tail() -> None:
    """EfficientNet's conv_head (320 -> 1280) follows the last level; DeepLab reads the level, as
    the V2 paper's V2* reads the 320-channel map, so the conv is trimmed with the rest of the tail."""
    task = get_task("segmentation")
    model = build_model(task, {**task.defaults(), "backbone": "timm:efficientnet_lite0", "resolution": SIZE, "num_classes": 21})
    reference = timm.create_model("efficientnet_lite0")
    tail = sum(p.numel() for m in (reference.conv_head, reference.bn2, reference.classifier) for p in m.parameters())
    assert count_params(model.backbone) == sum(p.numel() for p in reference.parameters()) - tail == 2_958_848
    assert (model.feature.name, model.feature.channels, model.feature.stride) == ("stride32_body", 320, 16)


@pytest.mark.parametrize("name, params, madds", [("mobilenetv4_conv_small", 3_774_024, 186_005_568), ("efficientnet_lite0", 4_652_008, 385_187_552)])
def test_classifier_is_timms_model_with_timms_counts(name: str, params: int, madds: int) -> None:
    classifier = create_classifier(f"timm:{name}").eval()
    source = classifier.backbone._model[0].eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), source(x), rtol=0, atol=0)
    assert count_params(classifier) == params == sum(p.numel() for p in timm.create_model(name).parameters())
    assert count_madds(classifier, torch.zeros(1, 3, 224, 224)) == madds


@pytest.mark.parametrize("name, fused_params, training_params", [("mobileone_s0", 2_078_504, 5_293_272)])
def test_reparameterisable_models_run_and_count_fused_in_eval_mode(name: str, fused_params: int, training_params: int) -> None:
    classifier = create_classifier(f"timm:{name}")
    assert classifier.backbone.reparameterized
    assert sum(p.numel() for p in classifier.parameters()) == training_params  # state dicts, optimisers: training form
    assert count_params(classifier) == fused_params  # the network as published and as timed
    # A training step, then eval: the fused copy is rebuilt from the new weights.
    classifier(torch.randn(2, 3, SIZE, SIZE)).square().mean().backward()
    with torch.no_grad():
        for p in classifier.parameters():
            p.add_(0.01 * p.grad.sign() if p.grad is not None else 0)
    classifier.eval()
    fused = classifier.backbone.body.inference_module()
    assert fused is not classifier.backbone.body.part
    source = classifier.backbone._model[0].eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ours, theirs = classifier(x), source(x)
    assert ((ours - theirs).abs().max() / theirs.abs().max()).item() < 1e-5


def test_dilation_is_timms_where_it_builds() -> None:
    backbone = timm_backbone("efficientnet_lite0", output_stride=8)
    assert {k: v.stride for k, v in backbone.feature_specs.items()} == {"stride16": 8, "stride32_body": 8, "stride32": 8, "stride16_expand": 8}
    with torch.no_grad():
        out = backbone.eval()(torch.zeros(1, 3, SIZE, SIZE))
    assert out["stride32"].shape[-1] == SIZE // 8


def test_models_that_do_not_dilate_refuse_in_one_line() -> None:
    with pytest.raises(UserError, match=r"^--output-stride 16: timm model 'mobilenetv4_conv_small' builds only at output stride 32 .*give --output-stride 32$"):
        timm_backbone("mobilenetv4_conv_small", output_stride=16)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--task", "segmentation", "--backbone", "timm:ghostnet_100"], "--output-stride 16: timm model 'ghostnet_100' builds only"),
        (["--backbone", "timm:mobilenetv9_large"], "unknown timm model 'mobilenetv9_large'"),
        (["--backbone", "timm:efficientvit_m0"], "its feature maps are at strides 16, 32, 64"),
    ],
)
def test_bad_timm_input_is_one_line_exit_2(argv: list[str], expected: str, capsys) -> None:
    code, out, err = bench(["profile", *argv], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err
    assert not out.strip()


def test_prefix_resolves_lazily_and_is_listed(capsys) -> None:
    entry = get_entry("timm:mobileone_s0")
    assert entry.name == "timm:mobileone_s0" and entry.options == ("output_stride",)
    assert "MobileOne" in entry.description
    with pytest.raises(UnknownBackboneError, match="timm:NAME"):
        get_entry("nottimm:mobileone_s0")
    assert [p.prefix for p in list_prefixes()] == ["timm:"]
    code, out, _ = bench(["list"], capsys)
    assert code == 0 and "timm:NAME" in out
    for family in FAMILIES:
        assert family.pattern in out and family.title in out
