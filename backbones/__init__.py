"""Backbone registry: the stable names that appear in configs, records and leaderboards.

The registry lives in ``backbones.registry``; this package resolves its names on first use, so
importing a light module of the package (``backbones.errors``) loads no torch.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BACKBONE_OPTIONS",
    "Backbone",
    "BackboneEntry",
    "BackbonePrefix",
    "backbone_options",
    "FeatureSpec",
    "UnknownBackboneError",
    "canonical_name",
    "create_backbone",
    "get_entry",
    "list_backbones",
    "list_prefixes",
    "register",
    "register_prefix",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from backbones import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'backbones' has no attribute {name!r}")
