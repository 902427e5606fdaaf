"""The one detection decoder: raw SSD outputs -> boxes, labels and scores in input pixels.

Training-time validation, ``bench eval``, ``bench predict``, the latency and device gates and the
export all decode through ``DetectionDecoder``, built once from the model's own anchors (for an
imported TFLite SSD, the file's 8-bit anchors, not the generator's) and one ``PostprocessOptions``
(for an imported file, its ``TFLite_Detection_PostProcess`` settings unless a flag overrides them).
Two roads here gave two mAPs for one file; one road gives one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from tasks.detection.postprocess import (
    MAX_DETECTIONS,
    NMS_IOU,
    PRE_NMS_TOP_K,
    SCORE_THRESHOLD,
    postprocess_detections,
)

Anchors = Callable[[tuple[int, int], Any], torch.Tensor]


@dataclass(frozen=True)
class PostprocessOptions:
    """How raw scores and box codes become detections (TF's SSD defaults)."""

    scoring: str = "sigmoid"
    score_threshold: float = SCORE_THRESHOLD
    nms_iou: float = NMS_IOU
    max_detections: int = MAX_DETECTIONS
    pre_nms_top_k: int = PRE_NMS_TOP_K
    nms: str = "class-wise"
    max_classes_per_detection: int = 1
    box_scales: tuple[float, ...] | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PostprocessOptions:
        """The options a run config states; the defaults where it is silent."""
        score = cfg.get("score_threshold")
        return cls(
            scoring=cfg.get("scoring") or "sigmoid",
            score_threshold=SCORE_THRESHOLD if score is None else float(score),
            nms_iou=cfg.get("nms_iou") or NMS_IOU,
            max_detections=cfg.get("max_detections") or MAX_DETECTIONS,
            pre_nms_top_k=cfg.get("pre_nms_top_k") or PRE_NMS_TOP_K,
            nms=cfg.get("nms") or "class-wise",
            max_classes_per_detection=cfg.get("max_classes_per_detection") or 1,
            box_scales=tuple(cfg["box_scales"]) if cfg.get("box_scales") else None,
        )

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)


class DetectionDecoder:
    """Decodes ``(class_logits, box_regression)`` of one model; anchors come from the model itself."""

    def __init__(self, anchors: Anchors, options: PostprocessOptions) -> None:
        self.anchors, self.options = anchors, options

    @classmethod
    def for_model(cls, model: nn.Module, cfg: Mapping[str, Any]) -> DetectionDecoder:
        return cls(model.anchors, PostprocessOptions.from_config(cfg))

    def __call__(self, outputs: Any, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        """Detections per image of ``outputs`` (tensors or arrays, any runtime's) for ``size`` inputs."""
        class_logits, box_regression = (torch.as_tensor(o) for o in outputs)
        size = (int(size[0]), int(size[1]))
        anchors = self.anchors(size, class_logits.device)
        return postprocess_detections(class_logits, box_regression, anchors, size, **self.options.as_kwargs())
