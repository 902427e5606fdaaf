"""Backbone construction from a run config, with construction errors turned into user errors."""

from __future__ import annotations

from typing import Any

from backbones import create_backbone
from backbones.features import Backbone
from benchmark.config import backbone_options
from backbones.errors import UserError


def backbone_from_config(cfg: dict[str, Any]) -> Backbone:
    try:
        return create_backbone(cfg["backbone"], **backbone_options(cfg))
    except ValueError as error:
        raise UserError(f"--backbone {cfg['backbone']}: {error}") from None
