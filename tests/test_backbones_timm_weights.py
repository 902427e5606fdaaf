"""timm's MobileNetV1/V2 ImageNet weights in the suite's modules: the key mapping (random weights of
timm's model copied in compute the same logits), loading from the Hugging Face cache offline, and
the one line naming what to download when the file is not there."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
from torch import nn

from backbones import get_entry
from backbones.classifier import ImageClassifier
from backbones.errors import UserError
from backbones.pretrained import PretrainedWeightsError, pretrained_classifier, timm_mobilenet_state_dict
from tasks import get_task
from tasks.factory import build_model
from tests.test_backbones import randomised

IMAGE = 64


@pytest.mark.parametrize("version, timm_name", [(1, "mobilenetv1_100"), (2, "mobilenetv2_100")])
def test_timm_weights_give_the_same_logits(version: int, timm_name: str) -> None:
    reference = randomised(timm.create_model(timm_name), seed=version)
    # timm's MobileNetV1 uses ReLU6 (the paper: ReLU); the mapping builds ours with timm's.
    options = {"activation_layer": nn.ReLU6} if version == 1 else {}
    ours = ImageClassifier(get_entry(f"mnv{version}").builder(**options), 1000)
    ours.load_state_dict(timm_mobilenet_state_dict(reference.state_dict(), version))  # strict: every key mapped
    image = torch.randn(2, 3, IMAGE, IMAGE)
    with torch.no_grad():
        expected, got = reference(image), ours.eval()(image)
    assert expected.std() > 1e-2  # not a degenerate comparison
    assert (got - expected).abs().max() < 1e-4 * max(1.0, float(expected.abs().max()))


@pytest.fixture
def hf_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Hugging Face cache, offline (as this machine is): hub calls read the cache only."""
    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def put_in_cache(cache: Path, timm_name: str, state: dict[str, torch.Tensor]) -> None:
    """What ``hf download`` leaves: refs/main naming a snapshot that holds model.safetensors."""
    repo = timm.models.get_pretrained_cfg(timm_name).hf_hub_id
    folder = cache / f"models--{repo.replace('/', '--')}"
    revision = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    (folder / "snapshots" / revision).mkdir(parents=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, folder / "snapshots" / revision / "model.safetensors")


def test_pretrained_timm_loads_from_the_cache_offline(hf_cache: Path) -> None:
    reference = randomised(timm.create_model("mobilenetv2_100"), seed=7)
    put_in_cache(hf_cache, "mobilenetv2_100", reference.state_dict())
    model = pretrained_classifier("mnv2", source="timm").eval()
    image = torch.randn(1, 3, IMAGE, IMAGE)
    with torch.no_grad():
        assert (model(image) - reference(image)).abs().max() < 1e-4 * max(1.0, float(reference(image).abs().max()))
    # Another class count: timm's body, a fresh head.
    eight = pretrained_classifier("mnv2", source="timm", num_classes=8).eval()
    with torch.no_grad():
        torch.testing.assert_close(eight.backbone(image)["stride32"], model.backbone(image)["stride32"])
        assert eight(image).shape == (1, 8)


def test_pretrained_timm_not_cached_is_one_line_naming_the_download(hf_cache: Path) -> None:
    with pytest.raises(PretrainedWeightsError) as caught:
        pretrained_classifier("mnv1", source="timm")
    message = str(caught.value)
    assert "\n" not in message and "'mnv1'" in message
    assert "https://huggingface.co/timm/mobilenetv1_100.ra4_e3600_r224_in1k" in message and str(hf_cache) in message


def test_pretrained_timm_through_the_task_is_a_user_error(hf_cache: Path) -> None:
    cfg = {"backbone": "mnv2", "pretrained": "timm", "num_classes": 21, "resolution": 65, **get_task("segmentation").defaults()}
    with pytest.raises(UserError, match=r"^--pretrained: could not load timm's mobilenetv2_100 weights for 'mnv2'"):
        build_model(get_task("segmentation"), cfg)


@pytest.mark.parametrize(
    "name, source, options, expected",
    [
        ("mnv1", "torchvision", {}, "backbone 'mnv1' has no torchvision pretrained weights (it has: timm)"),
        ("mnv2", "timm", {"width": 0.5}, "timm's mobilenetv2_100 weights exist only for width 1.0"),
    ],
)
def test_weights_that_do_not_exist_are_refused(name: str, source: str, options: dict, expected: str) -> None:
    with pytest.raises(PretrainedWeightsError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        pretrained_classifier(name, source=source, **options)


def test_the_mapped_backbones_are_the_registered_ones() -> None:
    assert get_entry("mnv1").pretrained == ("timm",) and get_entry("mnv2").pretrained == ("torchvision", "timm")
