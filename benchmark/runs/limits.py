"""Limits on the model settings every command shares (torch-free): checked where the flags are read,
before any model code is imported, and again where a recipe file sets them (``benchmark.runs.config``)."""

from __future__ import annotations

from backbones.errors import UserError

MIN_RESOLUTION = 32  # the smallest input every backbone's five stride-2 stages still map to a feature


def check_width(width: float | None, flag: str = "--width") -> None:
    if width is not None and width <= 0:
        raise UserError(f"{flag} must be > 0, got {width}")


def check_resolution(resolution: int, flag: str = "--resolution") -> None:
    if resolution < MIN_RESOLUTION:
        raise UserError(f"{flag} must be >= {MIN_RESOLUTION} pixels, got {resolution}")
