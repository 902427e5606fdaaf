"""TFLite's fast NMS (``nms="fast"``): NMS over anchors by their best class, each reported with it."""

from __future__ import annotations

import torch

from tasks.detection.options import DetectionOptions
from tasks.detection.postprocess import postprocess_detections


def logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p)))


def test_fast_nms_is_class_agnostic_and_keeps_the_best_class_per_anchor() -> None:
    anchors = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]])
    codes = torch.zeros(1, 3, 4)  # boxes = anchors
    # columns: background, class 0, class 1
    logits = torch.tensor([[[0.0, logit(0.9), logit(0.8)],    # anchor 0: best class 0
                            [0.0, logit(0.1), logit(0.85)],   # overlaps anchor 0 (IoU 0.82): suppressed
                            [0.0, logit(0.3), logit(0.2)]]])  # fmt: skip
    fast = postprocess_detections(logits, codes, anchors, (100, 100),
                                  DetectionOptions(nms="fast", max_detections=10, nms_iou=0.6))[0]
    assert fast["labels"].tolist() == [0, 0]
    assert torch.allclose(fast["scores"], torch.tensor([0.9, 0.3]))
    assert torch.allclose(fast["boxes"], anchors[[0, 2]])
    # Class-wise NMS keeps anchor 1 for class 1 (a different class from anchor 0's best).
    wise = postprocess_detections(logits, codes, anchors, (100, 100),
                                  DetectionOptions(max_detections=10, nms_iou=0.6))[0]
    assert (1, 0.85) in [(int(c), round(float(s), 2)) for c, s in zip(wise["labels"], wise["scores"], strict=True)]
    # Two classes per detection: each kept anchor with its two best (TFLite: max_detections x classes rows).
    two = postprocess_detections(logits, codes, anchors, (100, 100),
                                 DetectionOptions(nms="fast", max_detections=3, max_classes_per_detection=2))[0]
    assert two["labels"].tolist() == [0, 1, 0, 1]
    assert torch.allclose(two["scores"], torch.tensor([0.9, 0.8, 0.3, 0.2]))
    # The file's box scales: (x, y, w, h) weights of the decoder.
    codes = torch.tensor([[[1.0, 0, 0, 0]] * 3])
    moved = postprocess_detections(logits, codes, anchors, (100, 100),
                                   DetectionOptions(nms="fast", box_scales=(1.0, 1.0, 1.0, 1.0)))[0]
    assert torch.allclose(moved["boxes"][0], torch.tensor([10.0, 0, 20, 10]))


def test_fast_nms_breaks_ties_and_reports_boxes_as_the_op() -> None:
    """TFLite's op: equal scores by lower class and lower anchor first (8-bit scores tie often),
    boxes unclipped (one reaching out of the image stays so)."""
    anchors = torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 10], [1, 0, 11, 10], [90, 90, 110, 110]])
    codes = torch.zeros(1, 4, 4)
    tie = logit(0.5)
    # columns: background, class 0, class 1: every anchor's two classes tie.
    logits = torch.tensor([[[0.0, logit(0.25), logit(0.25)],
                            [0.0, tie, tie],  # first of the tie: kept, anchor 2 (IoU 0.82) suppressed
                            [0.0, tie, tie],
                            [0.0, tie, tie]]])  # fmt: skip
    fast = postprocess_detections(logits, codes, anchors, (100, 100),
                                  DetectionOptions(nms="fast", max_detections=10, nms_iou=0.6))[0]
    assert fast["labels"].tolist() == [0, 0, 0]
    assert torch.allclose(fast["boxes"], anchors[[1, 3, 0]])
    two = postprocess_detections(logits, codes, anchors, (100, 100),
                                 DetectionOptions(nms="fast", max_classes_per_detection=2))[0]
    assert two["labels"].tolist() == [0, 1, 0, 1, 0, 1]


def test_equal_logits_give_equal_scores_wherever_they_sit() -> None:
    """An 8-bit file's scores as logits, each at the 90 class positions of an anchor row: torch's float32
    sigmoid can differ by an ulp between its vector loop and a row's tail (9 of these rows on AVX2)."""
    from tasks.detection.postprocess import class_scores

    p = torch.arange(1, 256, dtype=torch.float64) / 256
    logits = torch.zeros(255, 91)
    logits[:, 1:] = torch.log(p / (1 - p)).float()[:, None]
    scores = class_scores(logits)
    assert torch.equal(scores, scores[:, :1].expand_as(scores))
