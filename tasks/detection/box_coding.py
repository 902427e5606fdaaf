"""SSD box encoding: offsets of a box from its anchor, scaled by TF's (10, 10, 5, 5).

TF's ``FasterRcnnBoxCoder(scale_factors=[10, 10, 5, 5])`` (the ssdlite_mobilenet_v2_coco config)
and torchvision's ``BoxCoder(weights=(10, 10, 5, 5))`` compute the same codes: centre offsets
divided by the anchor side times 10, log side ratios times 5. The codes are scale-invariant, so
anchors and boxes may be in pixels of the network input.
"""

from __future__ import annotations

import torch
from torchvision.models.detection._utils import BoxCoder

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
_CODER = BoxCoder(weights=BOX_CODER_WEIGHTS)


def encode(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` (x0, y0, x1, y1) boxes matched to ``[N, 4]`` anchors -> ``[N, 4]`` regression targets."""
    return _CODER.encode_single(boxes, anchors)


def decode(codes: torch.Tensor, anchors: torch.Tensor, weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """``[N, 4]`` regression outputs at ``[N, 4]`` anchors -> ``[N, 4]`` (x0, y0, x1, y1) boxes.

    ``weights`` (x, y, w, h scales) replace TF's (10, 10, 5, 5), e.g. a TFLite file's own box scales."""
    coder = _CODER if weights is None or tuple(weights) == BOX_CODER_WEIGHTS else BoxCoder(weights=tuple(weights))
    return coder.decode_single(codes, anchors)
