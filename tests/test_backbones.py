"""Backbones: registry, MobileNetV1/V2 against the papers and torchvision, feature taps, dilation,
and torchvision's weights mapped into the suite's modules."""

from __future__ import annotations

import math
import re
import urllib.error
from functools import partial
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models._utils import _make_divisible

from backbones import (
    BackboneEntry,
    UnknownBackboneError,
    canonical_name,
    create_backbone,
    get_entry,
    list_backbones,
    register,
    registry,
)
from backbones.classifier import ImageClassifier, create_classifier
from backbones.counting import count_params
from backbones.errors import UserError
from backbones.layers import make_divisible
from backbones.mobilenet_v1 import MobileNetV1
from backbones.mobilenet_v2 import MobileNetV2
from backbones.pretrained import PretrainedWeightsError, mobilenet_v2_state_dict, pretrained_classifier
from backbones.torchvision_baselines import BASELINES
from tasks.factory import build_model

OUTPUT_STRIDES = (32, 16, 8)
V2_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.4)


# -- registry -------------------------------------------------------------------------------------
def test_list_backbones_is_sorted_and_has_the_issue_backbones() -> None:
    names = list_backbones()
    assert names == sorted(names)
    required = {
        "mnv1",
        "mnv2",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
        "shufflenet_v2_x1_0",
        "mnasnet1_0",
        "resnet50",
    }
    assert required <= set(names)
    # Aliases resolve to an entry but are not listed as backbones of their own.
    assert "mobilenet_v1" not in names and "mobilenet_v2" not in names


def test_aliases_resolve_to_the_canonical_backbone() -> None:
    assert canonical_name("mobilenet_v1") == "mnv1"
    assert canonical_name("mobilenet_v2") == "mnv2"
    assert get_entry("mobilenet_v2") is get_entry("mnv2")
    assert isinstance(create_backbone("mobilenet_v1"), MobileNetV1)
    assert isinstance(create_backbone("mobilenet_v2", width=0.35), MobileNetV2)


def test_unknown_backbone_error_lists_every_known_name() -> None:
    with pytest.raises(UnknownBackboneError) as caught:
        create_backbone("mobilenet_v9")
    message = str(caught.value)
    assert "mobilenet_v9" in message and "\n" not in message
    for name in list_backbones():
        assert name in message


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register into copies, so a test's entries never leak into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))


@pytest.mark.parametrize(
    "name, aliases",
    [("mnv2", ()), ("mobilenet_v2", ()), ("fresh_net", ("mnv1",)), ("fresh_net", ("mobilenet_v1",))],
)
def test_duplicate_registration_raises_and_registers_nothing(scratch_registry, name, aliases) -> None:
    before = (dict(registry._REGISTRY), dict(registry._ALIASES))
    with pytest.raises(ValueError, match="already registered"):
        register(BackboneEntry(name, MobileNetV2, options=(), description="duplicate", aliases=aliases))
    assert (registry._REGISTRY, registry._ALIASES) == before


def test_registered_backbone_is_created_and_listed(scratch_registry) -> None:
    register(
        BackboneEntry(
            "tiny_v2",
            partial(MobileNetV2, width=0.35),
            options=("output_stride",),
            description="t",
            aliases=("tv2",),
        )
    )
    assert "tiny_v2" in list_backbones() and "tv2" not in list_backbones()
    assert create_backbone("tv2", output_stride=16).feature_specs["stride32"].stride == 16


def test_option_a_backbone_does_not_take_is_an_error_and_none_is_ignored() -> None:
    with pytest.raises(ValueError, match="width"):
        create_backbone("resnet18", width=0.5)
    with pytest.raises(ValueError, match="expansion"):
        create_backbone("mnv1", expansion=4.0)
    # None means "not given": the config passes every option, set or not.
    assert isinstance(create_backbone("mnv1", width=None, expansion=None, output_stride=None), MobileNetV1)


# -- MobileNetV2 against torchvision and the paper --------------------------------------------------
@pytest.mark.parametrize("width", V2_WIDTHS)
def test_mnv2_params_equal_torchvision(width: float) -> None:
    ours = count_params(create_classifier("mnv2", width=width))
    assert ours == count_params(torchvision.models.mobilenet_v2(width_mult=width))
    if width == 1.0:
        assert ours == 3_504_872  # torchvision's model card


def test_make_divisible_matches_the_tf_rule() -> None:
    """Multiples of 8, never below 90% of the exact value (TF MobileNet code, torchvision's copy)."""
    for tenths in range(1, 4000):
        value = tenths / 10
        rounded = make_divisible(value)
        assert rounded == _make_divisible(value, 8), value
        assert rounded % 8 == 0 and rounded >= 0.9 * value
    assert make_divisible(32 * 0.35) == 16  # 8 would be below 90% of 11.2


@pytest.mark.parametrize("width, last", [(0.35, 1280), (0.5, 1280), (0.75, 1280), (1.0, 1280), (1.4, 1792)])
def test_mnv2_last_conv_keeps_1280_below_width_one(width: float, last: int) -> None:
    """V2 paper, section 6.1: the width multiplier skips the last conv for multipliers < 1."""
    model = create_backbone("mnv2", width=width).eval()
    assert model.feature_specs["stride32"].channels == last and model.num_features == last
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32))
    assert out["stride32"].shape == (1, last, 1, 1)
    assert out["stride32_body"].shape[1] == make_divisible(320 * width)


def test_mnv2_named_taps_at_width_one() -> None:
    model = create_backbone("mnv2")
    specs = {name: (spec.channels, spec.stride) for name, spec in model.feature_specs.items()}
    assert specs["stride16_expand"] == (576, 16)  # 96 x t=6 inside the first stride-32 block ("layer 15")
    assert specs["stride16"] == (96, 16)
    assert specs["stride32_body"] == (320, 32)  # the paper's V2*
    assert specs["stride32"] == (1280, 32)
    assert model.detection_taps == ("stride16_expand", "stride32")
    assert model.segmentation_tap == "stride32_body"
    dilated = create_backbone("mnv2", output_stride=16).feature_specs
    assert (
        dilated["stride16_expand"].stride,
        dilated["stride32_body"].stride,
        dilated["stride32"].stride,
    ) == (16, 16, 16)


def test_mnv2_expansion_factor_sets_the_hidden_width() -> None:
    slim = create_backbone("mnv2", expansion=4.0)
    assert slim.feature_specs["stride16_expand"].channels == 96 * 4
    assert slim.feature_specs["stride32"].channels == 1280
    assert count_params(slim) < count_params(create_backbone("mnv2"))


def test_mnv1_named_taps() -> None:
    model = create_backbone("mnv1")
    assert (model.feature_specs["stride16"].channels, model.feature_specs["stride16"].stride) == (512, 16)
    assert (model.feature_specs["stride32"].channels, model.feature_specs["stride32"].stride) == (1024, 32)
    assert model.detection_taps == ("stride16", "stride32") and model.segmentation_tap == "stride32"
    assert create_backbone("mnv1", width=0.5).feature_specs["stride32"].channels == 512


def test_norm_and_activation_factories_are_used() -> None:
    # TF object-detection BN settings, as SSDLite uses them (V2 paper, section 6.2).
    norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.03)
    for model in (
        MobileNetV2(norm_layer=norm, activation_layer=nn.Hardswish),
        MobileNetV1(norm_layer=norm, activation_layer=nn.Hardswish),
    ):
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)
        assert any(isinstance(m, nn.Hardswish) for m in model.modules())
        assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())


@pytest.mark.parametrize("name", ["mnv1", "mnv2"])
def test_mobilenets_take_any_resolution_from_32(name: str) -> None:
    """Odd sizes work; every 3x3 stride-2 conv with padding 1 gives ceil(size / 2)."""
    model = create_backbone(name).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 33, 50))
    for tap, spec in model.feature_specs.items():
        assert out[tap].shape == (
            1,
            spec.channels,
            math.ceil(33 / spec.stride),
            math.ceil(50 / spec.stride),
        ), tap


# -- feature taps of every registered backbone (generated from the registry) -----------------------
# Dilated maps equal the stride-32 maps at every other position only when nothing pools over the
# whole map or replaces a stride by a different operation.
NOT_DILATION_EXACT = {
    "vgg16": "downsampling max-pools become 3x3 stride-1 pools (DeepLab-LargeFOV), not the same op",
    "mobilenet_v3_large": "squeeze-excitation averages over the whole, denser map",
    "mobilenet_v3_small": "squeeze-excitation averages over the whole, denser map",
}
SIDE = 64  # small inputs keep vgg16 and resnet50 fast; 64 is divisible by every stride


def nominal_stride(tap: str) -> int:
    """Tap names are nominal: "stride16_expand" is a stride-16 map at output stride 32."""
    match = re.fullmatch(r"stride(\d+)(_\w+)?", tap)
    assert match, f"tap {tap!r} is not named stride<N>[_suffix]"
    return int(match.group(1))


@pytest.fixture(scope="module", params=list_backbones())
def backbone_outputs(request) -> dict:
    """One backbone at output strides 32/16/8 with the same weights, run on the same input.

    The dilated variants load the stride-32 weights strictly: dilation must not change any weight.
    They are built on the meta device (no time spent on a random init the weights replace). Only
    specs and outputs are kept (three vgg16s at once would hold 1.6 GB).
    """
    name = request.param
    torch.manual_seed(0)
    image = torch.randn(1, 3, SIDE, SIDE)
    result = {"name": name, "specs": {}, "outputs": {}, "heads": {}}
    weights = None
    for output_stride in OUTPUT_STRIDES:
        if weights is None:
            model = create_backbone(name, output_stride=output_stride).eval()
            weights = model.state_dict()
            with torch.no_grad():
                result["smallest"] = model(torch.zeros(1, 3, 32, 32))  # the smallest --resolution
        else:
            with torch.device("meta"):
                model = create_backbone(name, output_stride=output_stride)
            model = model.to_empty(device="cpu").eval()
            model.load_state_dict(weights)
        with torch.no_grad():
            result["outputs"][output_stride] = model(image)
        result["specs"][output_stride] = dict(model.feature_specs)
        result["heads"][output_stride] = (model.detection_taps, model.segmentation_tap, model.num_features)
        del model
    return result


@pytest.mark.parametrize("output_stride", OUTPUT_STRIDES)
def test_taps_match_declared_specs(backbone_outputs: dict, output_stride: int) -> None:
    specs = backbone_outputs["specs"][output_stride]
    outputs = backbone_outputs["outputs"][output_stride]
    assert set(outputs) == set(specs)
    for tap, spec in specs.items():
        assert spec.name == tap
        assert spec.stride == min(nominal_stride(tap), output_stride), tap
        side = SIDE // spec.stride
        assert outputs[tap].shape == (1, spec.channels, side, side), tap


@pytest.mark.parametrize("output_stride", OUTPUT_STRIDES)
def test_declares_stride16_stride32_and_its_head_taps(backbone_outputs: dict, output_stride: int) -> None:
    specs = backbone_outputs["specs"][output_stride]
    detection_taps, segmentation_tap, num_features = backbone_outputs["heads"][output_stride]
    assert "stride16" in specs and "stride32" in specs
    assert len(detection_taps) == 2 and set(detection_taps) <= set(specs)
    assert [specs[t].stride for t in detection_taps] == [min(16, output_stride), output_stride]
    assert segmentation_tap in specs
    # The classifier pools ``stride32``: its declared width must be what the head expects.
    assert specs["stride32"].channels == num_features


def test_runs_at_the_smallest_resolution(backbone_outputs: dict) -> None:
    specs = backbone_outputs["specs"][32]
    for tap, tensor in backbone_outputs["smallest"].items():
        assert tensor.shape[1] == specs[tap].channels and tensor.shape[-1] == 32 // specs[tap].stride, tap


@pytest.mark.parametrize("output_stride", [16, 8])
def test_dilated_maps_equal_the_strided_ones_subsampled(backbone_outputs: dict, output_stride: int) -> None:
    """Atrous convolution (DeepLab): with the same weights, a map computed at output stride 16 or 8
    holds the stride-32 map at every (nominal / real)-th position. Wrong rates or paddings break it."""
    if backbone_outputs["name"] in NOT_DILATION_EXACT:
        pytest.skip(NOT_DILATION_EXACT[backbone_outputs["name"]])
    reference = backbone_outputs["outputs"][32]
    dilated = backbone_outputs["outputs"][output_stride]
    for tap, spec in backbone_outputs["specs"][output_stride].items():
        step = nominal_stride(tap) // spec.stride
        expected = reference[tap]
        torch.testing.assert_close(
            dilated[tap][..., ::step, ::step],
            expected,
            rtol=1e-4,
            atol=1e-4 * float(expected.abs().max()),
            msg=tap,
        )


# -- torchvision's weights in the suite's modules ----------------------------------------------------
def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere, BatchNorm statistics and affine included, so a mapping that mixes
    up any two layers changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.05)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("width", [0.5, 1.0, 1.4])
def test_torchvision_mobilenet_v2_weights_give_the_same_logits(width: float) -> None:
    torch.manual_seed(1)
    reference = randomised(torchvision.models.mobilenet_v2(width_mult=width))
    ours = ImageClassifier(create_backbone("mnv2", width=width), 1000)
    ours.load_state_dict(mobilenet_v2_state_dict(reference.state_dict()))  # strict: every key mapped
    ours.eval()
    image = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected, got = reference(image), ours(image)
    assert expected.std() > 1e-2  # not a degenerate comparison
    assert (got - expected).abs().max() < 1e-4


def test_mnv2_taps_are_torchvision_layers() -> None:
    """The taps are the layers the papers name, in torchvision's indexing: stride16_expand is the
    expand conv (with BN and ReLU6) of features[14], i.e. layer 15 of V2 section 6.2."""
    torch.manual_seed(2)
    reference = randomised(torchvision.models.mobilenet_v2())
    ours = ImageClassifier(create_backbone("mnv2"), 1000)
    ours.load_state_dict(mobilenet_v2_state_dict(reference.state_dict()))
    ours.eval()
    layers = {
        "stride4": reference.features[3],
        "stride8": reference.features[6],
        "stride16": reference.features[13],
        "stride16_expand": reference.features[14].conv[0],
        "stride32_body": reference.features[17],
        "stride32": reference.features[18],
    }
    seen: dict[str, torch.Tensor] = {}
    for tap, layer in layers.items():
        layer.register_forward_hook(lambda _m, _i, out, tap=tap: seen.__setitem__(tap, out))
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference(image)
        features = ours.backbone(image)
    assert set(features) == set(layers)
    for tap in layers:
        torch.testing.assert_close(features[tap], seen[tap], rtol=1e-4, atol=1e-4, msg=tap)


@pytest.fixture
def weights_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """torchvision's weights API with an empty hub dir and the download replaced.

    ``serve["state"]`` set: the "download" writes that state dict (a stand-in for the real file);
    unset: it fails as it does offline. ``serve["urls"]`` records what was requested.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    serve: dict = {"urls": []}

    def download(url: str, dst: str, *args, **kwargs) -> None:
        serve["urls"].append(url)
        if "state" not in serve:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        torch.save(serve["state"], dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return serve


@pytest.mark.parametrize("name", ["mnv2", "resnet18"])
def test_pretrained_offline_is_one_clear_line(weights_download: dict, name: str) -> None:
    with pytest.raises(PretrainedWeightsError) as caught:
        pretrained_classifier(name)
    message = str(caught.value)
    assert weights_download["urls"], "the weights API was not reached"
    assert "\n" not in message and name in message and "checkpoints" in message


def test_pretrained_offline_through_the_task_is_a_user_error(weights_download: dict) -> None:
    from tasks import get_task

    cfg = {"backbone": "mnv2", "pretrained": "torchvision", "num_classes": 1000, "resolution": 224}
    with pytest.raises(UserError, match=r"^--pretrained: .*mnv2"):
        build_model(get_task("classification"), cfg)


def test_pretrained_mnv2_loads_torchvision_weights(weights_download: dict) -> None:
    torch.manual_seed(3)
    reference = randomised(torchvision.models.mobilenet_v2())
    weights_download["state"] = reference.state_dict()
    model = pretrained_classifier("mnv2").eval()
    assert weights_download["urls"] == [torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url]
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(image) - reference(image)).abs().max() < 1e-4


def one_baseline_per_splitter() -> list[str]:
    """resnet50 splits like resnet18, mobilenet_v3_small like _large; vgg16 (550 MB of weights to
    write and read) is left out for time."""
    first: dict = {}
    for name in sorted(BASELINES):
        first.setdefault(BASELINES[name], name)
    return sorted(name for name in first.values() if name != "vgg16")


@pytest.mark.parametrize("name", one_baseline_per_splitter())
def test_pretrained_baseline_computes_torchvision_model(weights_download: dict, name: str) -> None:
    """Splitting a torchvision model into tapped blocks and its head keeps the function it computes."""
    torch.manual_seed(4)
    reference = randomised(torchvision.models.get_model(name))
    weights_download["state"] = reference.state_dict()
    model = pretrained_classifier(name).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(image)
        assert (model(image) - expected).abs().max() < 1e-4 * max(1.0, float(expected.abs().max()))


def test_pretrained_backbone_with_a_new_head_for_other_class_counts(weights_download: dict) -> None:
    """Fine-tuning on a dataset that is not ImageNet-1k (the embedded data has 8 classes): the
    backbone gets torchvision's weights and the classifier a fresh head of the right size."""
    torch.manual_seed(5)
    reference = randomised(torchvision.models.mobilenet_v2())
    weights_download["state"] = reference.state_dict()
    model = pretrained_classifier("mnv2", num_classes=8).eval()
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 8)
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(image)["stride32"], reference.features(image))


def test_the_registry_lists_every_torchvision_baseline_without_importing_torchvision() -> None:
    """`bench list` names the baselines from a tuple; the splitters' table is the same set of names."""
    import subprocess
    import sys

    from backbones.registry import TORCHVISION_BASELINES

    assert sorted(TORCHVISION_BASELINES) == sorted(BASELINES)
    code = "import sys, backbones; backbones.list_backbones(); print('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
