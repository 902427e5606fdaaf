"""Backbone registry: the stable names that appear in configs, records and leaderboards (re-exported by ``backbones``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from backbones.features import Backbone, FeatureSpec  # noqa: F401 - FeatureSpec: re-exported by ``backbones``
from backbones.mobilenet_v1 import mobilenet_v1
from backbones.mobilenet_v2 import mobilenet_v2


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
    # A paper ablation of another backbone (``backbones.ablations``): planned by the ablations
    # sweep tier, not by the tiers that take every backbone.
    ablation: bool = False


@dataclass(frozen=True)
class BackbonePrefix:
    """A family of names resolved on demand (``timm:NAME``): too many to register one by one, and
    their library is imported only when such a name is used, so the CLI starts fast."""

    prefix: str
    resolve: Callable[[str], BackboneEntry]  # the rest of the name -> its entry; UnknownBackboneError if none
    description: str
    options: tuple[str, ...]
    families: Callable[[], list[str]]  # one line per tested family, for ``bench list``


# The papers' ablations (backbones.ablations: the grid and the papers' figures) as variants of mnv1/mnv2:
# (name, builder, options it takes, description).
ABLATION_VARIANTS = (
    ("mnv1_full_conv", partial(mobilenet_v1, conv="full"), ("width", "output_stride", "padding"),
     "MobileNetV1 with full 3x3 convolutions (V1 paper, Table 4: Conv MobileNet)"),
    ("mnv1_shallow", partial(mobilenet_v1, shallow=True), ("width", "output_stride", "padding"),
     "MobileNetV1 without the five 14x14x512 layers (V1 paper, Table 5: Shallow MobileNet)"),
    ("mnv2_relu6_bottleneck", partial(mobilenet_v2, bottleneck_activation="relu6"), ("width", "expansion", "output_stride", "padding"),
     "MobileNetV2 with ReLU6 after each projection (V2 paper, Figure 6a)"),
    ("mnv2_shortcut_expansion", partial(mobilenet_v2, shortcut="expansion"), ("width", "expansion", "output_stride", "padding"),
     "MobileNetV2 with shortcuts between expansions (V2 paper, Figure 6b)"),
    ("mnv2_no_shortcut", partial(mobilenet_v2, shortcut="none"), ("width", "expansion", "output_stride", "padding"),
     "MobileNetV2 without residual connections (V2 paper, Figure 6b)"),
)  # fmt: skip


_REGISTRY: dict[str, BackboneEntry] = {}
_ALIASES: dict[str, str] = {}
_PREFIXES: dict[str, BackbonePrefix] = {}


def register(entry: BackboneEntry) -> None:
    for key in (entry.name, *entry.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"backbone name {key!r} is already registered")
    _REGISTRY[entry.name] = entry
    for alias in entry.aliases:
        _ALIASES[alias] = entry.name


def register_prefix(prefix: BackbonePrefix) -> None:
    if prefix.prefix in _PREFIXES:
        raise ValueError(f"backbone prefix {prefix.prefix!r} is already registered")
    _PREFIXES[prefix.prefix] = prefix


def list_backbones() -> list[str]:
    """The registered names (prefixed families such as ``timm:NAME`` are in ``list_prefixes``)."""
    return sorted(_REGISTRY)


def list_prefixes() -> list[BackbonePrefix]:
    return [_PREFIXES[p] for p in sorted(_PREFIXES)]


def get_entry(name: str) -> BackboneEntry:
    canonical = _ALIASES.get(name, name)
    if canonical in _REGISTRY:
        return _REGISTRY[canonical]
    for prefix, family in _PREFIXES.items():
        if name.startswith(prefix):
            return family.resolve(name[len(prefix) :])
    known = ", ".join([*list_backbones(), *(f"{p}NAME" for p in sorted(_PREFIXES))])
    raise UnknownBackboneError(f"unknown backbone {name!r}; known backbones: {known}")


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
        pretrained=("timm",),
    )
)
register(
    BackboneEntry(
        "mnv2",
        mobilenet_v2,
        options=("width", "expansion", "output_stride", "padding", "channel_divisor"),
        description="MobileNetV2 (Sandler et al. 2018, Table 2)",
        aliases=("mobilenet_v2",),
        pretrained=("torchvision", "timm"),
    )
)
for _name, _builder, _options, _description in ABLATION_VARIANTS:
    register(BackboneEntry(_name, _builder, options=_options, description=_description, ablation=True))
# torchvision's models as baselines (backbones.torchvision_baselines, which holds how each is split into
# blocks); torchvision is imported when one is built, not to list them (it costs `bench list` about 2 s).
TORCHVISION_BASELINES = ("mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x1_0", "mnasnet1_0", "resnet18",
                         "resnet50", "vgg16")  # fmt: skip


def torchvision_baseline(name: str, **options) -> Backbone:
    from backbones.torchvision_baselines import torchvision_backbone

    return torchvision_backbone(name, **options)


for _name in TORCHVISION_BASELINES:
    register(
        BackboneEntry(
            _name,
            partial(torchvision_baseline, _name),
            options=("output_stride",),
            description=f"torchvision {_name}",
            pretrained=("torchvision",),
        )
    )



TIMM_OPTIONS = ("output_stride",)


def _timm_entry(model_name: str) -> BackboneEntry:
    """``timm:NAME``: any timm image model, built with random weights (``backbones.timm_backbones``)."""
    import timm

    from backbones.timm_backbones import PREFIX, describe, timm_backbone

    if not timm.is_model(model_name):
        raise UnknownBackboneError(
            f"unknown timm model {model_name!r} (timm {timm.__version__}; timm.list_models('{model_name.split('_')[0]}*') lists its relatives)"
        )
    return BackboneEntry(PREFIX + model_name, partial(timm_backbone, model_name), TIMM_OPTIONS, describe(model_name))


def _timm_families() -> list[str]:
    from backbones.timm_backbones import FAMILIES

    return [
        f"{f.pattern:<28} {f.title}; output stride {', '.join(map(str, f.output_strides))}"
        + ("; reparameterised for inference" if f.reparameterized else "")
        for f in FAMILIES
    ]


register_prefix(
    BackbonePrefix(
        "timm:", _timm_entry, "any timm image model (random weights: pretrained=False)", TIMM_OPTIONS, _timm_families
    )
)
