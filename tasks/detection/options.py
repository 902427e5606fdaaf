"""The detection task's own settings (head, loss, crop and post-processing), checked once.

Torch-free, so the command line is built from it without importing the model; the value lists
here are the ones the model, loss and decoder modules import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backbones.errors import UserError
from tasks.options import option

HEADS = ("ssdlite", "ssd")
SCORINGS = ("sigmoid", "softmax")
MININGS = ("tf", "ratio")
RANDOM_CROPS = ("ssd", "none")
NMS_MODES = ("class-wise", "fast")  # TF's batch NMS per class; TFLite's fast (class-agnostic) NMS
# TF's configs: score threshold 1e-8 (every pair reaches NMS, so mAP sees the whole curve), IoU 0.6,
# 100 detections per image; 1x1 predictors on the ssd head.
SCORE_THRESHOLD = 1e-8
NMS_IOU = 0.6
MAX_DETECTIONS = 100
SSD_PREDICTOR_KERNEL = 1
# Boxes drawn by ``bench predict`` unless --score-threshold says otherwise.
PREDICT_SCORE_THRESHOLD = 0.5


@dataclass(frozen=True)
class DetectionOptions:
    head: str = option("ssdlite", "prediction layers: ssdlite (depthwise 3x3 + 1x1, default) or ssd (TF's SSD: "
                       "regular 3x3 extra layers, 1x1 class and box predictors)", choices=HEADS)
    head_width: float | None = option(None, "width multiplier of the extra layers (default: the backbone's, as TF's "
                                      "depth multiplier)", type=float)
    predictor_kernel: int = option(SSD_PREDICTOR_KERNEL, f"kernel of the ssd head's predictors (default "
                                   f"{SSD_PREDICTOR_KERNEL} as TF's configs; 3 is the V2 paper's Table 5 SSD)",
                                   choices=(1, 3))
    scoring: str = option("sigmoid", "class scores and loss: sigmoid (TF's SSD, background column ignored; "
                          "default) or softmax (torchvision's)", choices=SCORINGS)
    hard_mining: str = option("tf", "negatives in the loss: tf (TF's hard-example miner, default) or ratio (the "
                              "hardest, 3 per positive, torchvision's)", choices=MININGS)
    random_crop: str = option("ssd", "training crop: ssd (SSD's random IoU crop, default) or none (flip and colour "
                              "only; the embedded demo's short schedule)", choices=RANDOM_CROPS)
    score_threshold: float = option(SCORE_THRESHOLD, f"keep detections scoring above this (evaluation default "
                                    f"{SCORE_THRESHOLD}, predict default {PREDICT_SCORE_THRESHOLD})")
    nms_iou: float = option(NMS_IOU, f"class-wise NMS IoU threshold (default {NMS_IOU})")
    max_detections: int = option(MAX_DETECTIONS, f"detections kept per image (default {MAX_DETECTIONS})")
    nms: str = option("class-wise", "class-wise (TF's batch NMS, default) or fast (TFLite's class-agnostic NMS; the "
                      "default with --weights FILE.tflite whose TFLite_Detection_PostProcess says so)",
                      choices=NMS_MODES)

    def __post_init__(self) -> None:
        for name, allowed in (("head", HEADS), ("scoring", SCORINGS), ("hard_mining", MININGS),
                              ("random_crop", RANDOM_CROPS), ("nms", NMS_MODES)):
            if getattr(self, name) not in allowed:
                raise UserError(f"--{name.replace('_', '-')}: unknown value {getattr(self, name)!r}; "
                                f"choose from {', '.join(allowed)}")
        if self.head_width is not None and self.head_width <= 0:
            raise UserError(f"--head-width must be > 0, got {self.head_width}")
        if not 0 <= self.score_threshold < 1:
            raise UserError(f"--score-threshold must be in [0, 1), got {self.score_threshold}")
        if not 0 < self.nms_iou <= 1:
            raise UserError(f"--nms-iou must be in (0, 1], got {self.nms_iou}")
        if self.max_detections < 1:
            raise UserError(f"--max-detections must be >= 1, got {self.max_detections}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> DetectionOptions:
        """The options a run config states (a key set to None takes the default)."""
        given = {name: cfg[name] for name in cls.__dataclass_fields__ if cfg.get(name) is not None}
        return cls(**given)
