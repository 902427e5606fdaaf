"""The segmentation task's own settings (head input, ASPP, evaluation scales and flip), parsed once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backbones.errors import UserError
from tasks.segmentation.inference import parse_scales

FEATURES = ("body", "last")


@dataclass(frozen=True)
class SegmentationOptions:
    """The task's own settings in a run config, checked once."""

    feature: str  # "body": the backbone's segmentation tap (V2: the 320-ch V2* map); "last": "stride32"
    aspp: bool
    eval_scales: tuple[float, ...]
    eval_flip: bool


def segmentation_options(cfg: dict[str, Any]) -> SegmentationOptions:
    feature = cfg.get("feature") or "body"
    if feature not in FEATURES:
        raise UserError(f"--feature: unknown value {feature!r}; choose from {', '.join(FEATURES)}")
    return SegmentationOptions(
        feature=feature,
        aspp=bool(cfg.get("aspp")),
        eval_scales=parse_scales(cfg.get("eval_scales")),
        eval_flip=bool(cfg.get("eval_flip")),
    )
