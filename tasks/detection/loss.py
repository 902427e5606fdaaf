"""SSD training targets and loss (TF object-detection API; Liu et al., SSD, section 2.2).

Anchors match a ground-truth box at IoU >= 0.5 and every ground-truth box is forced onto its
best anchor (TF's ``ArgMaxMatcher(force_match_for_each_row=True)``, torchvision's ``SSDMatcher``).
Loss = smooth-L1 on the matched anchors' box codes + a classification loss on the matched anchors
and the mined negatives, normalised by the number of matches. Two classification losses:

- ``sigmoid`` (TF's ``weighted_sigmoid``, the default): independent sigmoid cross-entropy on every
  column (background included, one-hot targets), summed per anchor; mined by TF's
  ``HardExampleMiner`` (``mining="tf"``).
- ``softmax`` (torchvision's ssdlite): cross-entropy over background + classes; mined by ranking
  (``mining="ratio"``: the hardest negatives, at most 3 per positive).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import batched_nms, box_iou

from tasks.detection.box_coding import decode, encode
from tasks.detection.options import DEFAULTS, MININGS, SCORINGS

MATCH_IOU = 0.5
NEGATIVES_PER_POSITIVE = 3
MIN_NEGATIVES_PER_IMAGE = 3
# TF's hard_example_miner in ssdlite_mobilenet_v2_coco.config / ssd_mobilenet_v1_coco.config.
HARD_EXAMPLES = 3000
MINER_IOU = 0.99


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


def classification_losses(class_logits: torch.Tensor, classes: torch.Tensor, scoring: str) -> torch.Tensor:
    """``[B, A]`` per-anchor classification loss for logits ``[B, A, C + 1]`` and targets ``[B, A]``."""
    if scoring == "sigmoid":
        one_hot = F.one_hot(classes, class_logits.shape[-1]).to(class_logits.dtype)
        return F.binary_cross_entropy_with_logits(class_logits, one_hot, reduction="none").sum(-1)
    if scoring == "softmax":
        flat = F.cross_entropy(class_logits.reshape(-1, class_logits.shape[-1]), classes.reshape(-1), reduction="none")
        return flat.view_as(classes)
    raise ValueError(f"unknown scoring {scoring!r}; choose from {', '.join(SCORINGS)}")


def ratio_mining(
    losses: torch.Tensor, positive: torch.Tensor, negatives_per_positive: int, min_negatives: int
) -> torch.Tensor:
    """torchvision's SSD mining: all positives + the highest-loss negatives, at most
    ``negatives_per_positive`` per positive and at least ``min_negatives`` per image."""
    negative_loss = losses.masked_fill(positive, float("-inf"))
    rank = negative_loss.argsort(1, descending=True).argsort(1)
    num_negative = (negatives_per_positive * positive.sum(1)).clamp(min=min_negatives)
    num_negative = torch.minimum(num_negative, (~positive).sum(1))
    return positive | (rank < num_negative[:, None])


def tf_hard_example_mining(
    losses: torch.Tensor,
    positive: torch.Tensor,
    predicted_boxes: torch.Tensor,
    *,
    num_hard_examples: int = HARD_EXAMPLES,
    iou_threshold: float = MINER_IOU,
    negatives_per_positive: int = NEGATIVES_PER_POSITIVE,
    min_negatives: int = MIN_NEGATIVES_PER_IMAGE,
) -> torch.Tensor:
    """TF's ``HardExampleMiner(loss_type='cls')``: per image, NMS over the predicted boxes scored by
    their loss (IoU ``iou_threshold``, at most ``num_hard_examples``), then, walking the survivors
    from the highest loss down, every positive and negatives while their running count stays
    <= ``max(min_negatives, negatives_per_positive * positives among the survivors)``.

    Returns the ``[B, A]`` mask of anchors whose losses count (a positive NMS drops does not count).
    """
    batch, num_anchors = losses.shape
    image = torch.arange(batch, device=losses.device).repeat_interleave(num_anchors)
    kept = batched_nms(predicted_boxes.reshape(-1, 4).float(), losses.reshape(-1).float(), image, iou_threshold)
    selected = torch.zeros(batch * num_anchors, dtype=torch.bool, device=losses.device)
    kept_image = image[kept]
    # Rank within the image (kept is sorted by loss, images interleaved): keep the first N per image.
    order = torch.argsort(kept_image, stable=True)
    kept, kept_image = kept[order], kept_image[order]
    starts = torch.searchsorted(kept_image, torch.arange(batch, device=losses.device))
    rank_in_image = torch.arange(len(kept), device=losses.device) - starts[kept_image]
    kept = kept[rank_in_image < num_hard_examples]
    selected[kept] = True
    selected = selected.view(batch, num_anchors)
    # Subsample negatives in descending loss order among the selected anchors.
    order = losses.masked_fill(~selected, float("-inf")).argsort(1, descending=True)
    sel_sorted = selected.gather(1, order)
    pos_sorted = positive.gather(1, order) & sel_sorted
    neg_sorted = sel_sorted & ~pos_sorted
    max_negatives = (negatives_per_positive * pos_sorted.sum(1)).clamp(min=min_negatives)
    keep_sorted = pos_sorted | (neg_sorted & (neg_sorted.cumsum(1) <= max_negatives[:, None]))
    return torch.zeros_like(selected).scatter(1, order, keep_sorted)


def ssd_loss(
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    targets: list[dict[str, torch.Tensor]],
    anchors: torch.Tensor,
    *,
    scoring: str = DEFAULTS.scoring,
    mining: str = DEFAULTS.hard_mining,
    negatives_per_positive: int = NEGATIVES_PER_POSITIVE,
    min_negatives: int = MIN_NEGATIVES_PER_IMAGE,
) -> dict[str, torch.Tensor]:
    """``{"loss", "box_loss", "class_loss"}`` for raw outputs ``[B, A, C + 1]`` and ``[B, A, 4]``."""
    classes, codes = match_targets(targets, anchors)
    positive = classes > 0
    normaliser = positive.sum().clamp(min=1).to(class_logits.dtype)

    per_anchor = classification_losses(class_logits, classes, scoring)
    if mining == "tf":
        with torch.no_grad():
            predicted = decode(box_regression.detach().reshape(-1, 4).float(), anchors.repeat(len(classes), 1))
        counted = tf_hard_example_mining(
            per_anchor.detach(),
            positive,
            predicted.view(*classes.shape, 4),
            negatives_per_positive=negatives_per_positive,
            min_negatives=min_negatives,
        )
    elif mining == "ratio":
        counted = ratio_mining(per_anchor.detach(), positive, negatives_per_positive, min_negatives)
    else:
        raise ValueError(f"unknown hard-example mining {mining!r}; choose from {', '.join(MININGS)}")

    matched = positive & counted
    box_loss = F.smooth_l1_loss(box_regression[matched], codes[matched].to(box_regression.dtype), reduction="sum")
    class_loss = per_anchor[counted].sum()
    return {
        "loss": (box_loss + class_loss) / normaliser,
        "box_loss": box_loss.detach() / normaliser,
        "class_loss": class_loss.detach() / normaliser,
    }
