"""The classification task's own settings (the training augmentation's), checked once.

Torch-free, so the command line is built from it without importing the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backbones.errors import UserError
from tasks.options import option


@dataclass(frozen=True)
class ClassificationOptions:
    color_jitter: float = option(0.0, "training colour jitter strength (default 0: none)", type=float)
    # No flag: a recipe's (the embedded demo's 0.6).
    min_crop_scale: float = option(0.08, "smallest area fraction of the training random-resized crop", flag=False)

    def __post_init__(self) -> None:
        if self.color_jitter < 0:
            raise UserError(f"--color-jitter must be >= 0, got {self.color_jitter}")
        if not 0 < self.min_crop_scale <= 1:
            raise UserError(f"min_crop_scale must be in (0, 1], got {self.min_crop_scale}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ClassificationOptions:
        """The options a run config states (a key set to None takes the default); the datamodule takes them."""
        return cls(**{name: cfg[name] for name in cls.__dataclass_fields__ if cfg.get(name) is not None})


# Every default of the task's settings, for the functions that take them one by one.
DEFAULTS = ClassificationOptions()
