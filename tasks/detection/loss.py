"""SSD training targets and loss (TF ssdlite_mobilenet_v2_coco config; Liu et al., SSD, section 2.2).

Anchors match a ground-truth box at IoU >= 0.5 and every ground-truth box is forced onto its
best anchor (TF's ``ArgMaxMatcher(force_match_for_each_row=True)``, torchvision's ``SSDMatcher``).
Loss = smooth-L1 on the matched anchors' box codes + cross-entropy on the matched anchors and
the hardest negatives (at most 3 per positive, at least 3 per image so images without objects
still teach "background"), normalised by the number of matches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import box_iou

from tasks.detection.box_coding import encode

MATCH_IOU = 0.5
NEGATIVES_PER_POSITIVE = 3
MIN_NEGATIVES_PER_IMAGE = 3


def match_targets(
    targets: list[dict[str, torch.Tensor]], anchors: torch.Tensor, iou_threshold: float = MATCH_IOU
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: class target (0 = background, label + 1 otherwise) and box-code target.

    Returns ``classes [B, A]`` (int64) and ``codes [B, A, 4]`` (zero where background).
    """
    matcher = SSDMatcher(iou_threshold)
    classes = torch.zeros(len(targets), len(anchors), dtype=torch.int64, device=anchors.device)
    codes = torch.zeros(len(targets), len(anchors), 4, dtype=anchors.dtype, device=anchors.device)
    for i, target in enumerate(targets):
        boxes, labels = target["boxes"], target["labels"]
        if len(boxes) == 0:
            continue
        matches = matcher(box_iou(boxes, anchors))
        positive = matches >= 0
        matched = matches[positive]
        classes[i, positive] = labels[matched] + 1
        codes[i, positive] = encode(boxes[matched], anchors[positive])
    return classes, codes


def ssd_loss(
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    targets: list[dict[str, torch.Tensor]],
    anchors: torch.Tensor,
    *,
    negatives_per_positive: int = NEGATIVES_PER_POSITIVE,
    min_negatives: int = MIN_NEGATIVES_PER_IMAGE,
) -> dict[str, torch.Tensor]:
    """``{"loss", "box_loss", "class_loss"}`` for raw outputs ``[B, A, C + 1]`` and ``[B, A, 4]``."""
    classes, codes = match_targets(targets, anchors)
    positive = classes > 0
    num_positive = positive.sum(1)
    normaliser = num_positive.sum().clamp(min=1).to(class_logits.dtype)

    box_loss = F.smooth_l1_loss(box_regression[positive], codes[positive].to(box_regression.dtype), reduction="sum")

    per_anchor = F.cross_entropy(
        class_logits.reshape(-1, class_logits.shape[-1]), classes.reshape(-1), reduction="none"
    ).view_as(classes)
    # Hard negative mining: rank the background anchors by their loss, keep the worst ones.
    negative_loss = per_anchor.detach().masked_fill(positive, float("-inf"))
    order = negative_loss.argsort(1, descending=True)
    rank = order.argsort(1)
    num_negative = (negatives_per_positive * num_positive).clamp(min=min_negatives)
    num_negative = torch.minimum(num_negative, (~positive).sum(1))
    hard_negative = rank < num_negative[:, None]
    class_loss = per_anchor[positive].sum() + per_anchor[hard_negative].sum()

    return {
        "loss": (box_loss + class_loss) / normaliser,
        "box_loss": box_loss.detach() / normaliser,
        "class_loss": class_loss.detach() / normaliser,
    }
