"""Backbone registry: the stable names that appear in configs, records and leaderboards (re-exported by ``backbones``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from backbones.features import Backbone, FeatureSpec
from backbones.mobilenet_v1 import mobilenet_v1
from backbones.mobilenet_v2 import mobilenet_v2
from backbones.torchvision_baselines import BASELINES, torchvision_backbone


class UnknownBackboneError(ValueError):
    pass


@dataclass(frozen=True)
class BackboneEntry:
    name: str
    builder: Callable[..., Backbone]
    options: tuple[str, ...]
    description: str
    aliases: tuple[str, ...] = ()
    pretrained: tuple[str, ...] = ()


_REGISTRY: dict[str, BackboneEntry] = {}
_ALIASES: dict[str, str] = {}


def register(entry: BackboneEntry) -> None:
    for key in (entry.name, *entry.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"backbone name {key!r} is already registered")
    _REGISTRY[entry.name] = entry
    for alias in entry.aliases:
        _ALIASES[alias] = entry.name


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> BackboneEntry:
    canonical = _ALIASES.get(name, name)
    if canonical not in _REGISTRY:
        known = ", ".join(list_backbones())
        raise UnknownBackboneError(f"unknown backbone {name!r}; known backbones: {known}")
    return _REGISTRY[canonical]


def canonical_name(name: str) -> str:
    return get_entry(name).name


# The backbone constructors' options that a run config may carry (``bench --width`` etc.).
BACKBONE_OPTIONS = ("width", "expansion", "output_stride")


def backbone_options(cfg: dict) -> dict:
    """The backbone constructor's options present in a run config."""
    return {k: cfg[k] for k in BACKBONE_OPTIONS if cfg.get(k) is not None}


def create_backbone(name: str, **options) -> Backbone:
    """Build a registered backbone; options it does not take are an error, not silently dropped."""
    entry = get_entry(name)
    unknown = sorted(k for k, v in options.items() if k not in entry.options and v is not None)
    if unknown:
        takes = ", ".join(entry.options)
        raise ValueError(f"backbone {entry.name!r} does not take option(s) {', '.join(unknown)} (it takes: {takes})")
    return entry.builder(**{k: v for k, v in options.items() if v is not None})


register(
    BackboneEntry(
        "mnv1",
        mobilenet_v1,
        options=("width", "output_stride", "padding"),
        description="MobileNetV1 (Howard et al. 2017, Table 1)",
        aliases=("mobilenet_v1",),
    )
)
register(
    BackboneEntry(
        "mnv2",
        mobilenet_v2,
        options=("width", "expansion", "output_stride", "padding", "channel_divisor"),
        description="MobileNetV2 (Sandler et al. 2018, Table 2)",
        aliases=("mobilenet_v2",),
        pretrained=("torchvision",),
    )
)
for _name in BASELINES:
    register(
        BackboneEntry(
            _name,
            partial(torchvision_backbone, _name),
            options=("output_stride",),
            description=f"torchvision {_name}",
            pretrained=("torchvision",),
        )
    )

__all__ = [
    "BACKBONE_OPTIONS",
    "Backbone",
    "BackboneEntry",
    "backbone_options",
    "FeatureSpec",
    "UnknownBackboneError",
    "canonical_name",
    "create_backbone",
    "get_entry",
    "list_backbones",
    "register",
]
