"""Raw SSD outputs -> detections: decode, score threshold, class-wise NMS, top-k (TF's post-processing).

TF ssdlite_mobilenet_v2_coco: ``batch_non_max_suppression`` with IoU 0.6 and 100 detections
per image. Kept apart from the network so the network alone exports to ONNX and is timed alone.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

from tasks.detection.box_coding import decode

SCORE_THRESHOLD = 0.01  # low, so mAP sees the whole precision-recall curve (torchvision uses 0.001)
NMS_IOU = 0.6
MAX_DETECTIONS = 100
# Highest-scoring (anchor, class) pairs per image that reach NMS; bounds the NMS cost early in
# training, when every class scores about 1 / (classes + 1) everywhere.
PRE_NMS_CANDIDATES = 3000


def postprocess_detections(
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    anchors: torch.Tensor,
    image_size: tuple[int, int],
    *,
    score_threshold: float = SCORE_THRESHOLD,
    nms_iou: float = NMS_IOU,
    max_detections: int = MAX_DETECTIONS,
) -> list[dict[str, torch.Tensor]]:
    """Per image ``{"boxes" [K, 4] (x0, y0, x1, y1) in input pixels, "scores" [K], "labels" [K]}``.

    Labels are contiguous class indices (0-based, background removed).
    """
    probabilities = class_logits.float().softmax(-1)[..., 1:]
    num_classes = probabilities.shape[-1]
    results = []
    for scores, codes in zip(probabilities, box_regression.float(), strict=True):
        boxes = clip_boxes_to_image(decode(codes, anchors), image_size)
        flat = scores.flatten()
        keep = torch.nonzero(flat > score_threshold).squeeze(1)
        if len(keep) > PRE_NMS_CANDIDATES:
            keep = keep[flat[keep].topk(PRE_NMS_CANDIDATES).indices]
        anchor_index, labels = keep // num_classes, keep % num_classes
        candidate_boxes, candidate_scores = boxes[anchor_index], flat[keep]
        kept = batched_nms(candidate_boxes, candidate_scores, labels, nms_iou)[:max_detections]
        results.append({"boxes": candidate_boxes[kept], "scores": candidate_scores[kept], "labels": labels[kept]})
    return results
