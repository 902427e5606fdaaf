"""torchvision models as baseline backbones behind the same named-tap contract."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from backbones.features import OUTPUT_STRIDES, Backbone, FeatureSpec


class TorchvisionBackbone(Backbone):
    """A torchvision classifier split into a flat list of blocks, with taps at nominal strides.

    Strides are measured once with a small probe input; output stride 16/8 turns the later
    stride-2 convolutions into dilation block by block (the first block of a dilated stage keeps
    the previous rate, as torchvision's ``replace_stride_with_dilation`` does).
    """

    def __init__(
        self, blocks: list[nn.Module], classifier: nn.Module, num_features: int, *, output_stride: int = 32
    ) -> None:
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.blocks = nn.ModuleList(blocks)
        # A tuple keeps the template out of the module tree, so it never counts as backbone params.
        self._classifier_template = (classifier,)
        self.num_features = num_features
        block_strides, channels = _probe(self.blocks)
        self._tap_blocks: dict[int, str] = {}
        specs: dict[str, FeatureSpec] = {}
        nominal, real, rate = 1, 1, 1
        for index, (block, stride, c) in enumerate(zip(self.blocks, block_strides, channels, strict=True)):
            if stride > 1 and nominal >= output_stride:
                _dilate(block, rate, remove_stride=True)
                rate *= stride
                if isinstance(block, torchvision.models.resnet.BasicBlock):
                    # conv2 reads conv1's output, which is no longer downsampled: it needs the new rate.
                    _dilate(block.conv2, rate, remove_stride=False)
            else:
                real *= stride
                if rate > 1:
                    _dilate(block, rate, remove_stride=False)
            nominal *= stride
            if nominal in (4, 8, 16, 32):
                name = f"stride{nominal}"
                self._tap_blocks = {k: v for k, v in self._tap_blocks.items() if v != name}
                self._tap_blocks[index] = name
                specs[name] = FeatureSpec(name, c, real)
        if "stride32" not in specs or "stride16" not in specs:
            raise ValueError("torchvision model does not reach output stride 32")
        self.feature_specs = specs

    def make_classifier(self, num_classes: int) -> nn.Module:
        """torchvision's own head (its pretrained weights included), last Linear resized if needed."""
        head = copy.deepcopy(self._classifier_template[0])
        linears = [(name, m) for name, m in head.named_modules() if isinstance(m, nn.Linear)]
        name, last = linears[-1]
        if last.out_features != num_classes:
            parent = head.get_submodule(name.rsplit(".", 1)[0]) if "." in name else head
            setattr(parent, name.rsplit(".", 1)[-1], nn.Linear(last.in_features, num_classes))
        return head

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self._tap_blocks:
                features[self._tap_blocks[index]] = x
        return features


@torch.no_grad()
def _probe(blocks: nn.ModuleList) -> tuple[list[int], list[int]]:
    x = torch.zeros(1, 3, 64, 64)
    strides, channels = [], []
    was_training = blocks.training
    blocks.eval()
    for block in blocks:
        y = block(x)
        strides.append(x.shape[-1] // y.shape[-1])
        channels.append(y.shape[1])
        x = y
    blocks.train(was_training)
    return strides, channels


def _dilate(block: nn.Module, rate: int, *, remove_stride: bool) -> None:
    for conv in block.modules():
        if isinstance(conv, nn.MaxPool2d) and remove_stride and conv.stride != 1:
            # VGG downsamples with pooling: keep the pooling, drop its stride (DeepLab-LargeFOV).
            conv.kernel_size, conv.stride, conv.padding = 3, 1, 1
        if not isinstance(conv, nn.Conv2d):
            continue
        if remove_stride and conv.stride != (1, 1):
            conv.stride = (1, 1)
        k = conv.kernel_size[0]
        if k > 1:
            conv.dilation = (rate, rate)
            conv.padding = ((k - 1) // 2 * rate, (k - 1) // 2 * rate)


def _pooled_head(classifier: nn.Module) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), classifier)


def _from_mobilenet_v3(model: nn.Module) -> tuple[list[nn.Module], nn.Module, int]:
    return list(model.features), _pooled_head(model.classifier), model.features[-1].out_channels


def _from_mnasnet(model: nn.Module) -> tuple[list[nn.Module], nn.Module, int]:
    layers = list(model.layers)
    # torchvision's MnasNet keeps stem convs as loose layers: group everything up to the first
    # stack so each block changes the stride at most once.
    # One block per inverted residual (not per stack), so dilation grows after the strided unit.
    stem, stacks, tail = nn.Sequential(*layers[:8]), layers[8:14], layers[14:]
    return [stem, *(unit for stack in stacks for unit in stack), *tail], _pooled_head(model.classifier), 1280


def _from_shufflenet(model: nn.Module) -> tuple[list[nn.Module], nn.Module, int]:
    blocks = [model.conv1, model.maxpool, *model.stage2, *model.stage3, *model.stage4, model.conv5]
    return blocks, _pooled_head(model.fc), model.fc.in_features


def _from_resnet(model: nn.Module) -> tuple[list[nn.Module], nn.Module, int]:
    stem = nn.Sequential(model.conv1, model.bn1, model.relu)
    blocks = [stem, model.maxpool, *model.layer1, *model.layer2, *model.layer3, *model.layer4]
    return blocks, _pooled_head(model.fc), model.fc.in_features


def _from_vgg(model: nn.Module) -> tuple[list[nn.Module], nn.Module, int]:
    blocks: list[nn.Module] = []
    current: list[nn.Module] = []
    for layer in model.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(*current))
            current = []
    head = nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier)
    return blocks, head, 512


Splitter = Callable[[nn.Module], tuple[list[nn.Module], nn.Module, int]]

# name -> (torchvision builder name, how to split it into blocks)
BASELINES: dict[str, Splitter] = {
    "mobilenet_v3_large": _from_mobilenet_v3,
    "mobilenet_v3_small": _from_mobilenet_v3,
    "shufflenet_v2_x1_0": _from_shufflenet,
    "mnasnet1_0": _from_mnasnet,
    "resnet18": _from_resnet,
    "resnet50": _from_resnet,
    "vgg16": _from_vgg,
}


def torchvision_backbone(name: str, *, output_stride: int = 32, weights: str | None = None) -> TorchvisionBackbone:
    """Build torchvision's ``name`` (optionally with weights, e.g. ``"DEFAULT"``) and wrap it."""
    model = torchvision.models.get_model(name, weights=weights)
    blocks, classifier, num_features = BASELINES[name](model)
    return TorchvisionBackbone(blocks, classifier, num_features, output_stride=output_stride)
