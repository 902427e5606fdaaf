"""The detection task's own settings (head, loss, crop and post-processing), checked once.

Torch-free, so the command line is built from it without importing the model; the value lists
here are the ones the model, loss and decoder modules import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backbones.errors import UserError
from tasks.options import option

HEADS = ("ssdlite", "ssd")
SCORINGS = ("sigmoid", "softmax")
MININGS = ("tf", "ratio")
RANDOM_CROPS = ("ssd", "none")
NMS_MODES = ("class-wise", "fast")  # TF's batch NMS per class; TFLite's fast (class-agnostic) NMS
LABEL_MAPS = ("coco90",)  # "coco90": label i is COCO category i + 1 (TF's 90-id label map)
# TF's configs: score threshold 1e-8 (every pair reaches NMS, so mAP sees the whole curve), IoU 0.6,
# 100 detections per image; 1x1 predictors on the ssd head.
SCORE_THRESHOLD = 1e-8
NMS_IOU = 0.6
MAX_DETECTIONS = 100
SSD_PREDICTOR_KERNEL = 1
# Boxes drawn by ``bench predict`` unless --score-threshold says otherwise.
PREDICT_SCORE_THRESHOLD = 0.5
# (anchor, class) pairs per image that reach NMS in the fast version: 3x the detections kept.
# A pair outside them can only be among the final 100 if 200 higher-scoring pairs were suppressed
# (imported SSD MobileNetV1 on the COCO slice: mAP 23.54 vs 23.56 for the exact version).
PRE_NMS_TOP_K = 300
# The task's keys in every run config (its YAML), in this order; their values are the defaults below.
CONFIG_KEYS = ("head", "head_width", "predictor_kernel", "scoring", "hard_mining", "random_crop", "pre_nms_top_k",
               "score_threshold", "label_map", "nms_iou", "max_detections", "nms")


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
    # No flags: what an imported file's TFLite_Detection_PostProcess (or a recipe) states.
    pre_nms_top_k: int = option(PRE_NMS_TOP_K, "(anchor, class) pairs per image that reach class-wise NMS",
                                flag=False)
    max_classes_per_detection: int = option(1, "classes reported per kept anchor by fast NMS", flag=False)
    box_scales: tuple[float, ...] | None = option(None, "the box decoder's (x, y, w, h) scales (default TF's "
                                                  "10, 10, 5, 5)", type=float, flag=False)
    label_map: str | None = option(None, "coco90: label i is COCO category i + 1 (TF's 90-id COCO models)",
                                   choices=LABEL_MAPS, flag=False)

    def __post_init__(self) -> None:
        for name, allowed in (("head", HEADS), ("scoring", SCORINGS), ("hard_mining", MININGS),
                              ("random_crop", RANDOM_CROPS), ("nms", NMS_MODES), ("label_map", (None, *LABEL_MAPS))):
            if getattr(self, name) not in allowed:
                raise UserError(f"--{name.replace('_', '-')}: unknown value {getattr(self, name)!r}; "
                                f"choose from {', '.join(a for a in allowed if a)}")
        if self.head_width is not None and self.head_width <= 0:
            raise UserError(f"--head-width must be > 0, got {self.head_width}")
        if not 0 <= self.score_threshold < 1:
            raise UserError(f"--score-threshold must be in [0, 1), got {self.score_threshold}")
        if not 0 < self.nms_iou <= 1:
            raise UserError(f"--nms-iou must be in (0, 1], got {self.nms_iou}")
        if self.max_detections < 1:
            raise UserError(f"--max-detections must be >= 1, got {self.max_detections}")
        if self.pre_nms_top_k < 1 or self.max_classes_per_detection < 1:
            raise UserError(f"pre_nms_top_k and max_classes_per_detection must be >= 1, got {self.pre_nms_top_k} "
                            f"and {self.max_classes_per_detection}")
        if self.box_scales is not None and (len(self.box_scales) != 4 or min(self.box_scales) <= 0):
            raise UserError(f"box_scales: four positive (x, y, w, h) scales, got {list(self.box_scales)}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DetectionOptions:
        """The options a run config states (a key set to None takes the default). The one place a
        detection setting is read from a config: everything in ``tasks/detection`` takes this object."""
        given = {name: cfg[name] for name in cls.__dataclass_fields__ if cfg.get(name) is not None}
        if "box_scales" in given:  # a YAML list
            given["box_scales"] = tuple(float(scale) for scale in given["box_scales"])
        return cls(**given)

    def config_defaults(self) -> dict[str, Any]:
        """This object's values of the task's run-config keys (``CONFIG_KEYS``): what a run config
        holds when nothing overrides them (``DetectionTask.defaults``)."""
        return {name: getattr(self, name) for name in CONFIG_KEYS}


# Every default of the task's settings, for the functions that take them one by one.
DEFAULTS = DetectionOptions()
