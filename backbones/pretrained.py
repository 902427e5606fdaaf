"""torchvision's ImageNet weights loaded into the suite's modules (state-dict mapping)."""

from __future__ import annotations

import re

import torch
import torchvision

from backbones import create_backbone, get_entry
from backbones.classifier import ImageClassifier
from backbones.torchvision_baselines import torchvision_backbone


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


def pretrained_classifier(name: str, *, num_classes: int = 1000, **options) -> ImageClassifier:
    """Load torchvision's ImageNet weights for ``name``; offline without a cached file is a clear error."""
    entry = get_entry(name)
    if "torchvision" not in entry.pretrained:
        raise PretrainedWeightsError(f"backbone {entry.name!r} has no torchvision pretrained weights")
    try:
        if entry.name == "mnv2":
            if options.get("width", 1.0) != 1.0 or options.get("expansion", 6.0) != 6.0:
                raise PretrainedWeightsError("torchvision's mobilenet_v2 weights exist only for width 1.0, expansion 6")
            tv = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
            model = ImageClassifier(create_backbone("mnv2", **options), 1000)
            model.load_state_dict(mobilenet_v2_state_dict(tv.state_dict()))
        else:
            model = ImageClassifier(torchvision_backbone(entry.name, weights="DEFAULT", **options), 1000)
        if num_classes != 1000:
            # Fine-tuning on another label set: pretrained body, fresh head of the right size.
            model.head = model.backbone.make_classifier(num_classes)
        return model
    except (OSError, RuntimeError) as error:
        if isinstance(error, PretrainedWeightsError):
            raise
        hub = torch.hub.get_dir()
        raise PretrainedWeightsError(
            f"could not load torchvision weights for {entry.name!r} ({type(error).__name__}: {error}); "
            f"offline, put the .pth file in {hub}/checkpoints/"
        ) from None
