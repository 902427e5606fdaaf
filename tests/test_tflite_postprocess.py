"""TFLite's fast NMS (``nms="fast"``): NMS over anchors by their best class, each reported with it."""

from __future__ import annotations

import torch

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
    fast = postprocess_detections(logits, codes, anchors, (100, 100), nms="fast", max_detections=10, nms_iou=0.6)[0]
    assert fast["labels"].tolist() == [0, 0]
    assert torch.allclose(fast["scores"], torch.tensor([0.9, 0.3]))
    assert torch.allclose(fast["boxes"], anchors[[0, 2]])
    # Class-wise NMS keeps anchor 1 for class 1 (a different class from anchor 0's best).
    wise = postprocess_detections(logits, codes, anchors, (100, 100), max_detections=10, nms_iou=0.6)[0]
    assert (1, 0.85) in [(int(c), round(float(s), 2)) for c, s in zip(wise["labels"], wise["scores"], strict=True)]
    # Two classes per detection: each kept anchor with its two best (TFLite: max_detections x classes rows).
    two = postprocess_detections(logits, codes, anchors, (100, 100), nms="fast", max_detections=3,
                                 max_classes_per_detection=2)[0]
    assert two["labels"].tolist() == [0, 1, 0, 1]
    assert torch.allclose(two["scores"], torch.tensor([0.9, 0.8, 0.3, 0.2]))
    # The file's box scales: (x, y, w, h) weights of the decoder.
    codes = torch.tensor([[[1.0, 0, 0, 0]] * 3])
    moved = postprocess_detections(logits, codes, anchors, (100, 100), nms="fast", box_scales=(1.0, 1.0, 1.0, 1.0))[0]
    assert torch.allclose(moved["boxes"][0], torch.tensor([10.0, 0, 20, 10]))
