"""SSDLite (MobileNetV2 paper, section 6.2) on the taps of any registered backbone."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from backbones.features import Backbone
from backbones.layers import ConvNormAct
from tasks.detection.anchors import AnchorConfig, anchor_boxes
from tasks.detection.options import DEFAULTS

# TF object-detection API defaults, which torchvision's ssdlite320 also uses.
NORM = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.03)
EXTRA_CHANNELS = (512, 256, 256, 128)  # the four extra layers of section 6.2
MIN_DEPTH = 16  # TF's SSD feature extractors: extra layers never thinner than this


# Class and box predictors of the ssd head: TF's object-detection configs (ssd_mobilenet_v1_coco,
# ``convolutional_box_predictor { kernel_size: 1 }``) use one 1x1 conv; a 3x3 conv is what the V2
# paper's Table 5 counts for "SSD" (14.8M params), so that stays available for the count.


def extra_depths(width: float = 1.0) -> list[tuple[int, int]]:
    """(1x1 depth, output depth) of the four extra layers at a width (TF's depth multiplier).

    TF's ``multi_resolution_feature_maps``: ``depth_fn(d) = max(int(d * width), MIN_DEPTH)`` for the
    output and ``depth_fn(d / 2)`` for the 1x1 before it (width 0.75: 192->384, 96->192, 96->192, 48->96).
    """

    def depth(d: float) -> int:
        return max(int(d * width), MIN_DEPTH)

    return [(depth(d // 2), depth(d)) for d in EXTRA_CHANNELS]


class ExtraLayer(nn.Sequential):
    """1x1 conv to half the depth, then a stride-2 3x3 to full depth (TF's SSD feature map generator).

    SSDLite makes the 3x3 depthwise-separable; SSD keeps it a regular convolution. Counting both
    reproduces the V2 paper's Table 5 (prediction layers: 2.1M vs 14.8M params).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kind: str = "ssdlite", mid: int | None = None, *,
        padding: str = "torch",
    ) -> None:
        mid = mid or out_channels // 2
        if kind == "ssdlite":
            downsample = [
                ConvNormAct(mid, mid, 3, stride=2, groups=mid, norm_layer=NORM, padding=padding),
                ConvNormAct(mid, out_channels, 1, norm_layer=NORM),
            ]
        elif kind == "ssd":
            downsample = [ConvNormAct(mid, out_channels, 3, stride=2, norm_layer=NORM, padding=padding)]
        else:
            raise ValueError(f"unknown head {kind!r}; choose ssdlite or ssd")
        super().__init__(ConvNormAct(in_channels, mid, 1, norm_layer=NORM), *downsample)


def prediction_layer(in_channels: int, out_channels: int, kind: str, kernel_size: int = DEFAULTS.predictor_kernel) -> nn.Module:
    """SSDLite: depthwise 3x3 + BN + ReLU6, then a 1x1 projection; SSD: one regular conv (1x1 in TF)."""
    if kind == "ssdlite":
        return nn.Sequential(
            ConvNormAct(in_channels, in_channels, 3, groups=in_channels, norm_layer=NORM),
            nn.Conv2d(in_channels, out_channels, 1),
        )
    if kind == "ssd":
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)
    raise ValueError(f"unknown head {kind!r}; choose ssdlite or ssd")


class PredictionHead(nn.Module):
    """One prediction layer per feature map; outputs flattened to [B, anchors, values]."""

    def __init__(
        self, in_channels: list[int], boxes: list[int], values: int, kind: str, kernel_size: int = DEFAULTS.predictor_kernel
    ) -> None:
        super().__init__()
        self.values = values
        self.layers = nn.ModuleList(
            prediction_layer(c, a * values, kind, kernel_size) for c, a in zip(in_channels, boxes, strict=True)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for layer, x in zip(self.layers, features, strict=True):
            y = layer(x)
            n, _, h, w = y.shape
            # [B, A*V, H, W] -> [B, H, W, A, V] -> [B, H*W*A, V]: the anchor order of anchors.py.
            outputs.append(y.view(n, -1, self.values, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, self.values))
        return torch.cat(outputs, 1)


class SSDLite(nn.Module):
    """Backbone taps -> extra layers -> class and box prediction layers.

    ``forward`` returns raw ``(class_logits [B, N, classes + 1], box_regression [B, N, 4])``;
    anchors, decoding and NMS live outside so the network alone exports and is timed alone.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        *,
        head: str = DEFAULTS.head,
        anchors: AnchorConfig | None = None,
        width: float = 1.0,
        predictor_kernel: int = DEFAULTS.predictor_kernel,
        padding: str | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        # The added stride-2 convs pad like the backbone unless told otherwise ("tf" for TF checkpoints).
        self.padding = padding or backbone.padding
        self.num_classes = num_classes
        self.anchor_config = anchors or AnchorConfig()
        self.taps = backbone.detection_taps
        channels = [backbone.feature_specs[name].channels for name in self.taps]
        extras = []
        for mid, out_channels in extra_depths(width):
            extras.append(ExtraLayer(channels[-1], out_channels, head, mid, padding=self.padding))
            channels.append(out_channels)
        self.extras = nn.ModuleList(extras)
        boxes = self.anchor_config.boxes_per_location()
        self.classification = PredictionHead(channels, boxes, num_classes + 1, head, predictor_kernel)
        self.regression = PredictionHead(channels, boxes, 4, head, predictor_kernel)
        self._init_added_layers()
        self._feature_sizes: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._anchors: dict[tuple[int, int, str], torch.Tensor] = {}
        self._given_anchors: dict[tuple[int, int], torch.Tensor] = {}

    def _init_added_layers(self) -> None:
        # TF's ssdlite config initialises the added convs from a truncated normal with stddev 0.03;
        # torchvision's ssdlite320 uses N(0, 0.03). Backbone init is left to the backbone.
        for module in [*self.extras.modules(), *self.classification.modules(), *self.regression.modules()]:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.03)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        taps = self.backbone(images)
        maps = [taps[name] for name in self.taps]
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        return maps

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.feature_maps(images)
        return self.classification(maps), self.regression(maps)

    @torch.no_grad()
    def feature_sizes(self, image_size: tuple[int, int]) -> list[tuple[int, int]]:
        """(height, width) of the six maps for an input size, measured once per size.

        Measured, not computed: strides and paddings round odd sizes differently per backbone
        (VGG's 2x2 pooling floors, stride-2 3x3 convs ceil).
        """
        key = (int(image_size[0]), int(image_size[1]))
        if key not in self._feature_sizes:
            was_training = self.training
            self.eval()  # the probe must not update BatchNorm statistics
            try:
                weight = next(self.parameters())
                probe = torch.zeros(1, 3, *key, device=weight.device, dtype=weight.dtype)
                self._feature_sizes[key] = [tuple(m.shape[-2:]) for m in self.feature_maps(probe)]
            finally:
                self.train(was_training)
        return self._feature_sizes[key]

    def anchors(self, image_size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
        """``[A, 4]`` anchors in input pixels, in the order of ``forward``'s outputs."""
        key = (int(image_size[0]), int(image_size[1]), str(device))
        if key not in self._anchors:
            boxes = self._given_anchors.get(key[:2])
            if boxes is None:
                boxes = anchor_boxes(self.anchor_config, self.feature_sizes(image_size), image_size)
            self._anchors[key] = boxes.to(device)
        return self._anchors[key]

    def use_anchors(self, image_size: tuple[int, int], boxes: torch.Tensor) -> None:
        """Take ``boxes`` ``[A, 4]`` (input pixels, x0 y0 x1 y1) as the anchors at ``image_size``.

        A TFLite SSD's post-processing op decodes against the anchors stored in the file, 8-bit
        quantized (up to half a step, a pixel at 300, from the generator's): boxes that are the
        deployed file's need those.
        """
        size = (int(image_size[0]), int(image_size[1]))
        if boxes.shape != self.anchors(size).shape:
            raise ValueError(f"{len(boxes)} anchors given, the model makes {len(self.anchors(size))} at {size}")
        self._given_anchors[size] = boxes.detach().float().cpu()
        self._anchors = {key: value for key, value in self._anchors.items() if key[:2] != size}

    def prediction_layers(self) -> nn.ModuleDict:
        """The detector's own layers (extras + predictors), for the paper's Table 5 counts."""
        return nn.ModuleDict({"extras": self.extras, "classification": self.classification, "regression": self.regression})
