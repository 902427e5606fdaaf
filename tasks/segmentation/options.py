"""The segmentation task's own settings (head input, ASPP, evaluation scales and flip), parsed once.

Torch-free, so the command line is built from it without importing the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backbones.errors import UserError
from tasks.options import option

FEATURES = ("body", "last")


def parse_scales(value: str | Sequence[float] | float | None) -> tuple[float, ...]:
    """``"0.5,0.75,1.0"`` (flag), a YAML list or a number -> positive floats."""
    if value is None:
        return (1.0,)
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        scales = tuple(float(item) for item in items if str(item).strip())
    except ValueError:
        raise UserError(f"--eval-scales: {value!r} is not a comma-separated list of numbers, e.g. 0.5,1.0,1.5") from None
    if not scales or any(s <= 0 or s > 4 for s in scales):
        raise UserError(f"--eval-scales: {value!r} needs scales between 0 and 4, e.g. 0.5,0.75,1.0,1.25,1.5,1.75")
    return scales


@dataclass(frozen=True)
class SegmentationOptions:
    """The task's own settings in a run config, checked once."""

    feature: str = option("body", "head input: body = the backbone's segmentation tap (MobileNetV2: the "
                          "320-channel V2* map, default); last = the last map (MobileNetV2: 1280 channels)",
                          choices=FEATURES)
    aspp: bool = option(False, "DeepLabv3's ASPP (rates 6/12/18 at output stride 16); default off, the paper's "
                        "on-device head")
    eval_scales: tuple[float, ...] = option((1.0,), "comma-separated inference scales, e.g. "
                                            "0.5,0.75,1.0,1.25,1.5,1.75 (with --eval-flip: the paper's MF)", type=str)
    eval_flip: bool = option(False, "also average left-right flipped inputs at evaluation")

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise UserError(f"--feature: unknown value {self.feature!r}; choose from {', '.join(FEATURES)}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SegmentationOptions:
        """The options a run config states (a key set to None takes the default); the one place the
        task's settings are read from a config: the model, module and predictions take this object."""
        given = {name: cfg[name] for name in cls.__dataclass_fields__ if cfg.get(name) is not None}
        if "eval_scales" in given:  # "0.5,1.0" (flag, YAML string), a YAML list or a number
            given["eval_scales"] = parse_scales(given["eval_scales"])
        for name in ("aspp", "eval_flip"):
            if name in given:
                given[name] = bool(given[name])
        return cls(**given)

    def config_defaults(self) -> dict[str, Any]:
        """This object's values as a run config holds them (``eval_scales`` as its flag's text)."""
        return {"aspp": self.aspp, "feature": self.feature, "eval_scales": ",".join(str(s) for s in self.eval_scales),
                "eval_flip": self.eval_flip}


# Every default of the task's settings, for the functions that take them one by one.
DEFAULTS = SegmentationOptions()
