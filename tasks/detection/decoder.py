"""The one detection decoder: raw SSD outputs -> boxes, labels and scores in input pixels.

Training-time validation, ``bench eval``, ``bench predict``, the latency and device gates and the
export all decode through ``DetectionDecoder``, built once from the model's own anchors (for an
imported TFLite SSD, the file's 8-bit anchors, not the generator's) and the task's typed options
(``DetectionOptions``; for an imported file, its ``TFLite_Detection_PostProcess`` settings unless a
flag overrides them). Two roads here gave two mAPs for one file; one road gives one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tasks.detection.options import DEFAULTS, DetectionOptions
from tasks.detection.postprocess import postprocess_detections

Anchors = Callable[[tuple[int, int], Any], torch.Tensor]


class DetectionDecoder:
    """Decodes ``(class_logits, box_regression)`` of one model; anchors come from the model itself."""

    def __init__(self, anchors: Anchors, options: DetectionOptions = DEFAULTS) -> None:
        self.anchors, self.options = anchors, options

    @classmethod
    def for_model(cls, model: nn.Module, options: DetectionOptions) -> DetectionDecoder:
        """``model``'s decoder: its own anchors, ``options``' post-processing."""
        return cls(model.anchors, options)

    def __call__(self, outputs: Any, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        """Detections per image of ``outputs`` (tensors or arrays, any runtime's) for ``size`` inputs."""
        class_logits, box_regression = (torch.as_tensor(o) for o in outputs)
        size = (int(size[0]), int(size[1]))
        anchors = self.anchors(size, class_logits.device)
        return postprocess_detections(class_logits, box_regression, anchors, size, self.options)
