"""timm models as backbones behind the named-tap contract (``--backbone timm:NAME``).

Any of timm's image models builds (``pretrained=False``: nothing is downloaded) and is split, with
timm's own torch.fx feature extraction, into a body that returns the named taps and the classifier
head that follows it, both sharing the one timm model's modules (state-dict keys stay timm's):

- ``stride16``: the last ``feature_info`` level at (nominal) output stride 16;
- ``stride32_body``: the last ``feature_info`` level (stride 32), where DeepLabv3 attaches, as the
  V2 paper's "V2*" uses MobileNetV2's 320-channel map rather than the final 1x1 conv;
- ``stride32``: ``forward_features``' output (EfficientNet's 1280-channel ``conv_head``; the same
  map as ``stride32_body`` where the model's last conv sits after pooling, as in MobileNetV3/V4),
  which the classifier (timm's ``forward_head``) reads and SSDLite's second head taps;
- ``stride16_expand``: where the block that goes from stride 16 to 32 widens its input before its
  strided convolution (the V2 paper's "expansion of layer 15", section 6.2), SSDLite's first tap.
  Found by running the model once on the meta device and taking the last module to finish before
  that strided op inside the same block. Per family (timm 1.0.31, tested in tests/test_timm_backbones.py):
  EfficientNet(-Lite)/MobileNetV2/V3 ``blocks.5.0.bn1`` (the 1x1 expansion + BN + act),
  MobileNetV4 ``blocks.3.0.pw_exp``, GhostNet ``blocks.7.0.ghost1``, EfficientViT (MIT)
  ``stages.3.blocks.0.main.inverted_conv``, MobileViTv2 ``stages.4.0.conv1_1x1``. Families whose
  downsampling conv comes first in its block (MobileNetV1, LCNet, MobileOne, RepViT, FastViT)
  have none, and SSDLite taps ``stride16``, as it does on MobileNetV1.

Output stride 8/16 is timm's own dilation (``create_model(..., output_stride=)``); models that do
not build dilated (MobileNetV3/V4, GhostNet, RepViT, FastViT, ...) refuse it in one line.

Reparameterisable models (MobileOne, RepViT, FastViT, ...: any with a ``reparameterize`` /
``fuse`` / ``switch_to_deploy`` module) train in their multi-branch form and run, in eval mode,
a copy fused by ``timm.utils.reparameterize_model``: what eager timing, every export and the
parameter counts of ``backbones.counting`` see. ``Backbone.reparameterized`` says so.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from backbones.errors import UserError
from backbones.features import OUTPUT_STRIDES, Backbone, FeatureSpec, FxLeaf

PREFIX = "timm:"
# Methods timm's reparameterize_model calls: a model with any of them has a fused inference form.
_REPARAM_METHODS = ("fuse", "reparameterize", "switch_to_deploy")


@dataclass(frozen=True)
class TimmFamily:
    """A family of timm models that `bench list` names (any timm model builds; these are the tested ones)."""

    pattern: str
    title: str
    output_strides: tuple[int, ...]
    reparameterized: bool = False


# What `bench list` shows; `output_strides` are those timm builds (32 alone: dilation refused).
FAMILIES = (
    TimmFamily("mobilenetv4_*", "MobileNetV4 (Qin et al. 2024)", (32,)),
    TimmFamily("efficientnet_lite*", "EfficientNet-Lite (Tan & Le 2019, TF-Lite variant)", (8, 16, 32)),
    TimmFamily("ghostnet_*", "GhostNet (Han et al. 2020)", (32,)),
    TimmFamily("mobileone_s*", "MobileOne (Vasu et al. 2023)", (8, 16, 32), reparameterized=True),
    TimmFamily("repvit_*", "RepViT (Wang et al. 2024)", (32,), reparameterized=True),
    TimmFamily("fastvit_*", "FastViT (Vasu et al. 2023)", (32,), reparameterized=True),
    TimmFamily("efficientvit_b*", "EfficientViT (Cai et al. 2023, MIT)", (32,)),
    TimmFamily("mobilevitv2_*", "MobileViTv2 (Mehta & Rastegari 2022)", (8, 16, 32)),
    TimmFamily("lcnet_*", "PP-LCNet (Cui et al. 2021)", (32,)),
    TimmFamily("mobilenetv1_*, mobilenetv2_*", "timm's MobileNetV1/V2", (8, 16, 32)),
)


class _Call(nn.Module):
    """``model.<method>(x)`` as a module, so torch.fx traces exactly that part of a timm model."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method
        self.result = nn.Identity()  # a node named "result" for the method's output, whatever its last op
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> Any:
        return self.result(getattr(self.model, self.method)(x))


def _extract(model: nn.Module, method: str, outputs: dict[str, str], start: str | None = None) -> nn.Module:
    """timm's fx feature extractor over ``model.<method>``: a module returning ``{name: tensor}`` for
    ``outputs`` (name -> module path, or ``LAST`` for the method's result); with ``start`` (a module
    path), only what follows that module's output, which becomes its input.

    Paths, not node names, so a fused copy (whose nodes differ) is cut at the same places.
    """
    from timm.layers import create_feature_extractor
    from torchvision.models.feature_extraction import DualGraphModule

    # torchvision resolves a module path to the last node inside that module.
    nodes = {_node(path): name for name, path in outputs.items()}
    if start is not None:
        nodes[_node(start)] = START
    was_training = model.training
    extractor = create_feature_extractor(_Call(model, method), return_nodes=nodes)
    model.train(was_training)
    if start is not None:
        # Only the modules the cut graphs call are kept: the tail shares none of the body's.
        extractor = DualGraphModule(extractor, _cut(extractor.train_graph, extractor), _cut(extractor.eval_graph, extractor))
    return extractor.train(was_training)


START = "__start__"


def _cut(graph: torch.fx.Graph, owner: nn.Module) -> torch.fx.Graph:
    """``graph`` from its ``START`` output on: that node's uses read a new input instead."""
    graph = copy.deepcopy(graph)
    graph.owning_module = owner  # dead-code elimination asks the modules whether they are pure
    output = next(n for n in graph.nodes if n.op == "output")
    outputs = dict(output.args[0])
    begin = outputs.pop(START)
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    with graph.inserting_before(inputs[0]):
        tail_input = graph.placeholder("x_start")
    begin.replace_all_uses_with(tail_input)
    output.args = (outputs,)
    graph.eliminate_dead_code()
    for node in inputs:
        graph.erase_node(node)
    graph.lint()
    return graph


LAST = ""  # the module path standing for a method's result


def _node(path: str) -> str:
    return "result" if path == LAST else "model." + path


class TimmPart(FxLeaf):
    """One traced part of a timm model (the tapped body, its tail, or the classifier head).

    In training mode it runs ``part``, whose modules are the timm model's own. A reparameterisable
    model switched to eval mode runs a fused copy instead: ``timm.utils.reparameterize_model`` on a
    copy of the whole model, traced again with the same outputs (fusing changes the module tree the
    first trace walked). The copy is kept out of the module tree (state dicts, optimisers and
    checkpoints hold the training form) and rebuilt at every switch to eval, from current weights.
    """

    def __init__(self, source: nn.Module, build: Callable[[nn.Module], nn.Module], *, reparameterize: bool) -> None:
        super().__init__()
        self.part = build(source)
        self.reparameterize = reparameterize
        # Tuples keep these out of the module tree: the source holds modules the part does not use.
        self._source = (source, build)
        self._fused: tuple[nn.Module, ...] = ()

    def inference_module(self) -> nn.Module:
        """The module eval mode runs: the fused copy, or ``part`` itself."""
        if not self.reparameterize:
            return self.part
        if not self._fused:
            from timm.utils import reparameterize_model

            source, build = self._source
            fused = build(reparameterize_model(source).eval()).eval()
            # Inference only: exporters that meet it outside the module tree take its weights as
            # constants, which they refuse while those require grad.
            fused.requires_grad_(False)
            self._fused = (fused,)
        return self._fused[0]

    def train(self, mode: bool = True) -> TimmPart:
        if self.reparameterize and not mode and self.training:
            self._fused = ()  # weights changed since the last fusion (or never fused)
        super().train(mode)
        if self.reparameterize and not mode:
            self.inference_module()
        return self

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001 - torch's signature
        # .to(device / dtype / memory format) moves the fused copy with the training form.
        super()._apply(fn, recurse)
        if self._fused:
            self._fused[0]._apply(fn, recurse)
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.reparameterize and not self.training:
            return self.inference_module()(x)
        return self.part(x)


class TimmBackbone(Backbone):
    """A timm model's body with the suite's named taps; ``make_classifier`` gives timm's own head.

    ``body`` computes the taps up to ``stride32_body``; ``tail`` (where ``forward_features`` goes on
    after the last feature level, as EfficientNet's ``conv_head``) computes ``stride32`` from it,
    so DeepLab, which reads ``stride32_body``, neither runs nor counts the tail.
    """

    def __init__(self, model_name: str, model: nn.Module, taps: dict[str, FeatureSpec], paths: dict[str, str]) -> None:
        super().__init__()
        self.model_name = model_name
        self.tap_modules = {name: path for name, path in paths.items() if path != LAST}  # timm's module paths
        self.reparameterized = any(hasattr(m, n) for m in model.modules() for n in _REPARAM_METHODS)
        body = {name: path for name, path in paths.items() if name != "stride32"}
        self.body = TimmPart(model, partial(_extract, method="forward_features", outputs=body), reparameterize=self.reparameterized)
        self.tail = None
        if paths["stride32"] != paths["stride32_body"]:
            build = partial(_extract, method="forward_features", outputs={"stride32": LAST}, start=paths["stride32_body"])
            self.tail = TimmPart(model, build, reparameterize=self.reparameterized)
        self._model = (model,)
        self.feature_specs = taps
        self.num_features = taps["stride32"].channels
        self.detection_taps = ("stride16_expand" if "stride16_expand" in taps else "stride16", "stride32")
        self.segmentation_tap = "stride32_body"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.body(x)  # one call under torch.fx (an FxLeaf): it picks its form at run time
        features = {name: out[name] for name in ("stride16", "stride16_expand", "stride32_body") if name in self.feature_specs}
        features["stride32"] = self.tail(features["stride32_body"])["stride32"] if self.tail is not None else features["stride32_body"]
        return features

    def make_classifier(self, num_classes: int) -> nn.Module:
        """timm's ``forward_head`` (pooling, MobileNetV3/V4's ``conv_head``, the classifier) with a
        ``num_classes``-way classifier."""
        model = self._model[0]
        if model.num_classes != num_classes:  # timm's own head as built otherwise (RepViT's distilled pair)
            model.reset_classifier(num_classes)
        build = partial(_extract, method="forward_head", outputs={"logits": LAST})
        return _Logits(TimmPart(model, build, reparameterize=self.reparameterized))


class _Logits(nn.Module):
    def __init__(self, head: TimmPart) -> None:
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)["logits"]


def timm_backbone(model_name: str, *, output_stride: int = 32) -> TimmBackbone:
    """Build timm's ``model_name`` (random weights) at ``output_stride`` and tap it."""
    import timm

    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    kwargs = {} if output_stride == 32 else {"output_stride": output_stride}
    try:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
    except (TypeError, AssertionError, ValueError) as error:
        if not kwargs:
            raise
        raise UserError(
            f"--output-stride {output_stride}: timm model {model_name!r} builds only at output stride 32 "
            f"(timm: {str(error).splitlines()[0]}); give --output-stride 32"
        ) from None
    probe = _probe(model_name)
    taps, paths = _taps(model_name, model, probe, output_stride)
    return TimmBackbone(model_name, model, taps, paths)


@dataclass(frozen=True)
class _Probe:
    """One meta-device forward at output stride 32: module starts and ends in call order (an end
    carries the output's channels and height) and which modules are leaves."""

    size: int
    events: tuple[tuple[str, str, int, int], ...]  # ("start" | "end", module, channels, height)
    leaves: frozenset[str]
    passthrough: frozenset[str]  # Identity / Dropout: their output is their input
    features_channels: int
    features_from: frozenset[str]  # modules whose output is forward_features' result itself


PROBE_SIZE = 256


def _probe(model_name: str) -> _Probe:
    import timm

    with torch.device("meta"):
        twin = timm.create_model(model_name, pretrained=False).eval()
    events: list[tuple[str, str, int, int]] = []
    outputs: dict[str, torch.Tensor] = {}

    def on_end(name: str, out: Any) -> None:
        if isinstance(out, torch.Tensor) and out.dim() == 4:
            events.append(("end", name, int(out.shape[1]), int(out.shape[-2])))
            outputs[name] = out

    handles = []
    for name, module in twin.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, name=name: events.append(("start", name, 0, 0))))
        handles.append(module.register_forward_hook(lambda m, a, out, name=name: on_end(name, out)))
    with torch.no_grad():
        features = twin.forward_features(torch.empty(1, 3, PROBE_SIZE, PROBE_SIZE, device="meta"))
    for handle in handles:
        handle.remove()
    leaves = frozenset(name for name, m in twin.named_modules() if next(m.children(), None) is None)
    passthrough = frozenset(n for n, m in twin.named_modules() if isinstance(m, (nn.Identity, nn.Dropout)))
    features_from = frozenset(name for name, out in outputs.items() if out is features)
    return _Probe(PROBE_SIZE, tuple(events), leaves, passthrough, int(features.shape[1]), features_from)


def _nominal(reductions: list[int]) -> list[int]:
    """Reductions the levels have at output stride 32, from those at a smaller output stride
    (where timm's feature_info stops growing): past the plateau each level doubles."""
    nominal = [reductions[0]]
    for previous, current in zip(reductions, reductions[1:], strict=False):
        nominal.append(nominal[-1] * 2 if current == previous else nominal[-1] * current // previous)
    return nominal


def _taps(model_name: str, model: nn.Module, probe: _Probe, output_stride: int) -> tuple[dict[str, FeatureSpec], dict[str, str]]:
    levels = list(model.feature_info)
    nominal = _nominal([level["reduction"] for level in levels])
    if nominal[-1] != 32 or 16 not in nominal:
        raise UserError(
            f"--backbone timm:{model_name}: its feature maps are at strides {', '.join(map(str, nominal))}; "
            "the suite's heads need maps at strides 16 and 32"
        )
    i16 = max(i for i, r in enumerate(nominal) if r == 16)
    level16, level32 = levels[i16], levels[-1]
    stride16, stride32 = min(16, output_stride), min(32, output_stride)
    taps = {
        "stride16": FeatureSpec("stride16", level16["num_chs"], stride16),
        "stride32_body": FeatureSpec("stride32_body", level32["num_chs"], stride32),
        "stride32": FeatureSpec("stride32", probe.features_channels, stride32),
    }
    # stride32 is the last level's own output where forward_features ends there (no tail to run).
    last = level32["module"] if level32["module"] in probe.features_from else LAST
    paths = {"stride16": level16["module"], "stride32_body": level32["module"], "stride32": last}
    expansion = _expansion(probe, level16["module"], level16["num_chs"])
    if expansion is not None:
        name, channels = expansion
        taps["stride16_expand"] = FeatureSpec("stride16_expand", channels, stride16)
        paths["stride16_expand"] = name
    return taps, paths


def _expansion(probe: _Probe, level16: str, channels16: int) -> tuple[str, int] | None:
    """The module (and its channels) that widens the input of the block going from stride 16 to 32,
    just before that block's strided op; None when the strided op comes first in its block."""
    at16, at32 = probe.size // 16, probe.size // 32
    events = probe.events
    heights = {name: height for kind, name, _, height in events if kind == "end"}
    level_end = max((i for i, (kind, name, _, _) in enumerate(events) if kind == "end" and name == level16), default=None)
    if level_end is None:
        return None
    # The strided op: the first leaf started after the stride-16 level whose output is at stride 32.
    strided_at = next(
        (i for i in range(level_end, len(events)) if events[i][0] == "start" and events[i][1] in probe.leaves
         and heights.get(events[i][1]) == at32),
        None,
    )  # fmt: skip
    if strided_at is None:
        return None
    strided = events[strided_at][1]
    # Its input: the last module to finish before it started.
    ended = [e for e in events[level_end + 1 : strided_at] if e[0] == "end" and e[1] not in probe.passthrough]
    if not ended:
        return None
    _, name, channels, height = ended[-1]
    # Only a widening inside the block that strides (it started after the stride-16 level finished):
    # the level itself, or a later stage or block still at stride 16, is not an expansion.
    block = _common_ancestor(name, strided)
    block_start = next((i for i, e in enumerate(events) if e[0] == "start" and e[1] == block), -1) if block else -1
    if height != at16 or channels <= channels16 or block_start <= level_end:
        return None
    return name, channels


def _common_ancestor(a: str, b: str) -> str:
    common = []
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        common.append(x)
    return ".".join(common)


def describe(model_name: str) -> str:
    """One line for ``bench list`` / errors: the family a timm name belongs to, if a tested one."""
    import fnmatch

    for family in FAMILIES:
        if any(fnmatch.fnmatch(model_name, p.strip()) for p in family.pattern.split(",")):
            return f"timm {model_name}: {family.title}"
    return f"timm {model_name}"
