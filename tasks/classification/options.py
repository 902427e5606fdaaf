"""The classification task's own settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backbones.errors import UserError
from tasks.options import option


@dataclass(frozen=True)
class ClassificationOptions:
    color_jitter: float | None = option(None, "training colour jitter strength", type=float)

    def __post_init__(self) -> None:
        if self.color_jitter is not None and self.color_jitter < 0:
            raise UserError(f"--color-jitter must be >= 0, got {self.color_jitter}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ClassificationOptions:
        return cls(color_jitter=cfg.get("color_jitter"))
