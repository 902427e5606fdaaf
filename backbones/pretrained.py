"""ImageNet weights from torchvision and timm loaded into the suite's modules (state-dict mappings).

One road: ``pretrained_classifier(name, source=...)``. The suite's own MobileNetV1/V2 get a library's
weights through a tested key mapping (``MAPPED``: the library's model, the renaming, the layer
options that make the two compute the same function); torchvision's baselines are torchvision's
modules and load their own weights.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from backbones import get_entry
from backbones.classifier import ImageClassifier

SOURCES = ("torchvision", "timm")


class PretrainedWeightsError(RuntimeError):
    pass


def mobilenet_v2_state_dict(tv_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ``mobilenet_v2`` state dict to ``ImageClassifier(MobileNetV2)`` keys.

    torchvision: ``features.0`` stem, ``features.1..17`` blocks (``conv.0`` expand when t != 1,
    then depthwise, then a bare projection conv and its BN), ``features.18`` last conv,
    ``classifier.1`` the linear layer.
    """
    last = max(int(k.split(".")[1]) for k in tv_state if k.startswith("features."))
    out: dict[str, torch.Tensor] = {}
    for key, value in tv_state.items():
        if key.startswith("classifier.1."):
            out["head.3." + key.removeprefix("classifier.1.")] = value
            continue
        index = int(key.split(".")[1])
        rest = key.split(".", 2)[2]
        if index == 0:
            out["backbone.stem." + rest] = value
        elif index == last:
            out["backbone.last_conv." + rest] = value
        else:
            block = f"backbone.blocks.{index - 1}."
            # Blocks with an expand conv have four parts (conv.0..conv.3), the t=1 block three.
            has_expand = f"features.{index}.conv.3.weight" in tv_state
            match = re.match(r"conv\.(\d+)\.(.*)", rest)
            part, tail = int(match.group(1)), match.group(2)
            names = ["expand", "depthwise", "project.0", "project.1"] if has_expand else ["depthwise", "project.0", "project.1"]
            name = names[part]
            out[block + (name + "." + tail if name.startswith("project") else f"{name}.{tail}")] = value
    return out


# timm's EfficientNet-builder names inside a block -> ours. V2's inverted residual: conv_pw/bn1
# expand, conv_dw/bn2 depthwise, conv_pwl/bn3 project; its t=1 block and every V1 block are
# depthwise-separable: conv_dw/bn1 depthwise, conv_pw/bn2 pointwise.
_TIMM_V2_BLOCK = {"conv_pw": "expand.0", "bn1": "expand.1", "conv_dw": "depthwise.0", "bn2": "depthwise.1", "conv_pwl": "project.0", "bn3": "project.1"}
_TIMM_V2_FIRST = {"conv_dw": "depthwise.0", "bn1": "depthwise.1", "conv_pw": "project.0", "bn2": "project.1"}
_TIMM_V1_BLOCK = {"conv_dw": "0.0", "bn1": "0.1", "conv_pw": "1.0", "bn2": "1.1"}


def timm_mobilenet_state_dict(timm_state: dict[str, torch.Tensor], version: int) -> dict[str, torch.Tensor]:
    """Rename a timm ``mobilenetv1_100`` (``version=1``) or ``mobilenetv2_100`` state dict to
    ``ImageClassifier(MobileNetV1/V2)`` keys. timm nests blocks by stage (``blocks.S.B``); ours are flat."""
    stages = sorted({(int(s), int(b)) for s, b in re.findall(r"^blocks\.(\d+)\.(\d+)\.", "\n".join(timm_state), re.M)})
    flat = {pair: index for index, pair in enumerate(stages)}
    top = {"conv_stem": "backbone.stem.0", "bn1": "backbone.stem.1", "conv_head": "backbone.last_conv.0",
           "bn2": "backbone.last_conv.1", "classifier": "head.3"}  # fmt: skip
    out: dict[str, torch.Tensor] = {}
    for key, value in timm_state.items():
        match = re.match(r"blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)$", key)
        if match is None:
            module, field = key.rsplit(".", 1)
            out[f"{top[module]}.{field}"] = value
            continue
        stage, block, module, field = int(match[1]), int(match[2]), match[3], match[4]
        index = flat[(stage, block)]
        names = _TIMM_V1_BLOCK if version == 1 else (_TIMM_V2_FIRST if index == 0 else _TIMM_V2_BLOCK)
        out[f"backbone.blocks.{index}.{names[module]}.{field}"] = value
    return out


@dataclass(frozen=True)
class LibraryWeights:
    """A library's ImageNet model whose weights map onto one of the suite's backbones."""

    source: str  # "torchvision" | "timm"
    model: str  # the library's model name (timm: with its pretrained tag, if not the default)
    rename: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    # Layer options under which the suite's module computes the library's function.
    layer_options: dict[str, Any]


MAPPED = {
    # IMAGENET1K_V1: the paper's recipe reproduced (71.878 top-1), not V2's newer recipe.
    ("mnv2", "torchvision"): LibraryWeights("torchvision", "mobilenet_v2.IMAGENET1K_V1", mobilenet_v2_state_dict, {}),
    ("mnv2", "timm"): LibraryWeights("timm", "mobilenetv2_100", lambda s: timm_mobilenet_state_dict(s, 2), {}),
    # timm's MobileNetV1 uses ReLU6 where the paper (and the suite's default) uses ReLU.
    ("mnv1", "timm"): LibraryWeights("timm", "mobilenetv1_100", lambda s: timm_mobilenet_state_dict(s, 1), {"activation_layer": nn.ReLU6}),
}
# The shapes the libraries' weights exist for: width 1.0, expansion 6, torch padding.
_PUBLISHED_SHAPE = {"width": 1.0, "expansion": 6.0, "padding": "torch", "channel_divisor": 8}


def library_model(source: str, model: str, backbone: str) -> nn.Module:
    """The library's ImageNet model with its published weights (downloaded, or from its cache);
    unavailable offline: one line naming what to download and where the library caches it."""
    try:
        if source == "torchvision":
            import torchvision

            name, _, weights = model.partition(".")
            return torchvision.models.get_model(name, weights=weights or "DEFAULT")
        import timm

        return timm.create_model(model, pretrained=True)
    except (OSError, RuntimeError) as error:
        raise PretrainedWeightsError(f"could not load {source}'s {model} weights for {backbone!r} ({type(error).__name__}: "
                                     f"{str(error).splitlines()[0] if str(error) else ''}); {_where(source, model)}") from None  # fmt: skip


def _where(source: str, model: str) -> str:
    if source == "torchvision":
        return f"offline, put the .pth file in {torch.hub.get_dir()}/checkpoints/"
    import timm
    from huggingface_hub import constants

    repo = timm.models.get_pretrained_cfg(model).hf_hub_id
    return f"download https://huggingface.co/{repo} (model.safetensors) into the Hugging Face cache {constants.HF_HUB_CACHE}, e.g. with: hf download {repo}"


def pretrained_classifier(name: str, *, num_classes: int = 1000, source: str = "torchvision", **options) -> ImageClassifier:
    """An ImageNet classifier on backbone ``name`` with ``source``'s weights; another class count
    keeps the pretrained body under a fresh head of that size."""
    entry = get_entry(name)
    if source not in entry.pretrained:
        raise PretrainedWeightsError(f"backbone {entry.name!r} has no {source} pretrained weights (it has: {', '.join(entry.pretrained) or 'none'})")
    mapped = MAPPED.get((entry.name, source))
    if mapped is not None:
        differs = sorted(k for k, v in options.items() if k in _PUBLISHED_SHAPE and v != _PUBLISHED_SHAPE[k])
        if differs:
            raise PretrainedWeightsError(f"{source}'s {mapped.model} weights exist only for "
                                         + ", ".join(f"{k} {_PUBLISHED_SHAPE[k]}" for k in differs))  # fmt: skip
        library = library_model(source, mapped.model, entry.name)
        model = ImageClassifier(entry.builder(**options, **mapped.layer_options), 1000)
        model.load_state_dict(mapped.rename(library.state_dict()))
    else:
        from backbones.torchvision_baselines import torchvision_backbone

        try:
            backbone = torchvision_backbone(entry.name, weights="DEFAULT", **options)
        except (OSError, RuntimeError) as error:
            raise PretrainedWeightsError(f"could not load torchvision weights for {entry.name!r} ({type(error).__name__}: "
                                         f"{error}); {_where('torchvision', entry.name)}") from None  # fmt: skip
        model = ImageClassifier(backbone, 1000)
    if num_classes != 1000:
        # Fine-tuning on another label set: pretrained body, fresh head of the right size.
        model.head = model.backbone.make_classifier(num_classes)
    return model
