"""Official TFLite checkpoints into the suite's own task models.

``inspect_tflite`` says what a file is (task, backbone, width, input size, classes, preset);
``build_model`` builds the matching suite model (TF "SAME" padding, ReLU6, align-corners
upsampling where the file says so); ``load_tflite_weights`` fills a model and checks it layer by
layer. ``import_tflite`` does all three.

Weights: the files hold BatchNorm folded into each convolution (weight and bias). The suite's
modules keep their BatchNorms, set to identity plus the folded bias (running mean 0, running var
1 - eps, weight 1, bias = folded bias), so the state dict, training (fine-tuning re-estimates the
statistics) and export all stay as for any other model.

Classification heads: the files have 1001 logits, class 0 = "background". The suite's ImageNet
classes are the 1000 ILSVRC-2012 wnids in sorted order, which is the files' order of logits 1..1000;
logit 0 is dropped, so class index i of the suite is logit i + 1 of the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones import get_entry
from backbones.classifier import ImageClassifier
from backbones.errors import UserError
from backbones.layers import Conv2dTFSame, make_divisible
from tasks.provenance import sha256_of
from tasks.tflite.reader import TFLiteGraph, TFLiteOp, read_tflite

# Widths the official MobileNet releases use (depth multipliers); a file's width snaps to one of them.
KNOWN_WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# Channels of the last body layer at width 1 (V1 Table 1: 1024; V2 Table 2: 320).
LAST_BODY_CHANNELS = {"mnv1": 1024, "mnv2": 320}
ACTIVATION_MODULES = {"RELU": nn.ReLU, "RELU6": nn.ReLU6}


@dataclass(frozen=True)
class TFLiteFacts:
    """What a file is, in the suite's terms (``bench eval`` prints and records it)."""

    path: str
    sha256: str
    task: str  # classification | segmentation | detection
    backbone: str  # mnv1 | mnv2
    width: float
    channel_divisor: int  # MobileNetV2 channel rounding: 8 (TF slim) or 1 (TF DeepLab below width 1)
    resolution: int
    num_classes: int  # the suite's count (ImageNet: 1000, background logit dropped)
    file_classes: int  # logits in the file
    output_stride: int
    activation: str  # the body's fused activation: RELU6 or RELU
    align_corners: bool  # segmentation: how the file upsamples logits
    preset: str  # the evaluation preprocessing the file implies
    input_scale: float
    input_zero_point: int

    def describe(self) -> str:
        return (
            f"{Path(self.path).name}: {self.task}, {self.backbone} width {self.width:g}, "
            f"input {self.resolution}, {self.num_classes} classes, preset {self.preset}"
        )


@dataclass
class ImportReport:
    """What ``load_tflite_weights`` did: layers and values copied, and the file's facts."""

    facts: TFLiteFacts
    layers: int
    values: int
    notes: list[str] = field(default_factory=list)
    # Task config values the file implies beyond its facts (detection: head, label map).
    options: dict[str, Any] = field(default_factory=dict)
    # A post-processing op's options as the file stores them (detection: TFLite_Detection_PostProcess),
    # and the evaluation settings that reproduce it (``bench eval``'s defaults for this file).
    postprocess: dict[str, Any] | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def preset(self) -> str:
        return self.facts.preset

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.facts.path,
            "sha256": self.facts.sha256,
            "task": self.facts.task,
            "backbone": self.facts.backbone,
            "width": self.facts.width,
            "channel_divisor": self.facts.channel_divisor,
            "resolution": self.facts.resolution,
            "layers": self.layers,
            "values": self.values,
            "preset": self.facts.preset,
            "notes": list(self.notes),
            **({"postprocess_options": dict(self.postprocess)} if self.postprocess is not None else {}),
        }


@dataclass(frozen=True)
class FileConfig:
    """What a file implies for a run config, read without building a model: its facts, the task
    options it fixes (detection: head, label map) and its own post-processing with the evaluation
    settings that reproduce it (every command that decodes defaults to them)."""

    facts: TFLiteFacts
    options: dict[str, Any] = field(default_factory=dict)
    postprocess: dict[str, Any] | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "backbone": facts.backbone, "width": facts.width, "resolution": facts.resolution,
            "num_classes": facts.num_classes, "preset": facts.preset, **self.evaluation, **self.options,
        }  # fmt: skip


def read_file_config(path: str | Path, *, task: str | None = None) -> FileConfig:
    """A classification or segmentation file's config (``Task.tflite_file_config``): its facts alone."""
    return FileConfig(checked_facts(read_tflite(path), task))


def checked_facts(graph: TFLiteGraph, task: str | None) -> TFLiteFacts:
    """The file's facts, refused in one line when it is another task's file."""
    facts = inspect_tflite(graph)
    if task is not None and task != facts.task:
        raise UserError(f"{graph.path}: is a {facts.task} checkpoint ({facts.describe()}), not {task}")
    return facts


# -- what a file is ----------------------------------------------------------------------------


def inspect_tflite(path: str | Path | TFLiteGraph) -> TFLiteFacts:
    """Infer task, backbone, width, input size and classes from a file's graph."""
    graph = path if isinstance(path, TFLiteGraph) else read_tflite(path)
    kinds = {op.kind for op in graph.ops}
    convs = graph.convs()
    if not convs:
        raise UserError(unsupported(graph))
    output = graph.tensors[graph.outputs[0]].shape if graph.outputs else ()
    # Segmentation: an arg-max map, or logits at the input's spatial size (float DeepLab files).
    spatial = len(output) == 4 and output[1] > 1 and output[2] > 1
    task = (
        "detection"
        if "TFLite_Detection_PostProcess" in kinds
        else "segmentation"
        if "RESIZE_BILINEAR" in kinds and ("ARG_MAX" in kinds or spatial)
        else "classification"
    )
    # MobileNetV2's inverted residuals add; MobileNetV1 is a plain chain of convolutions.
    backbone = "mnv2" if "ADD" in kinds else "mnv1"
    body = _body_convs(graph, task)
    if not body or (task == "classification" and spatial):  # a feature map out, not logits: unknown
        raise UserError(unsupported(graph))
    last = int(body[-1].weight.shape[0])
    if backbone == "mnv2" and task == "classification":
        last = int(body[-2].weight.shape[0])  # before the final 1x1 conv to 1280
    nominal = LAST_BODY_CHANNELS[backbone]
    fits = [w for w in KNOWN_WIDTHS if make_divisible(nominal * w) == last]
    width = min(fits, key=lambda w: abs(w - last / nominal)) if fits else round(last / nominal, 4)
    divisor = _channel_divisor(backbone, width, body)
    stride = 1
    for op in body:
        stride *= op.stride[0] if op.stride else 1
    logits = _logits_conv(graph, task)
    file_classes = int(logits.weight.shape[0]) if logits is not None else 0
    num_classes = file_classes - 1 if task == "classification" and file_classes == 1001 else file_classes
    resize = graph.of_kind("RESIZE_BILINEAR")
    align = bool(resize[-1].options.get("alignCorners")) if resize else False
    activation = body[0].activation if body[0].activation in ACTIVATION_MODULES else "RELU6"
    preset = {"classification": "tf-inception", "segmentation": "tf-deeplab"}.get(task, "tf-inception")
    if task == "segmentation" and "ARG_MAX" not in kinds and graph.input.dtype == "float32":
        # Float logits files (deeplabv3_257_mv_gpu): the whole image resized to the input, not padded.
        preset = "tf-deeplab-resize"
    source = graph.path
    return TFLiteFacts(
        path=str(source),
        sha256=sha256_of(source),
        task=task,
        backbone=backbone,
        width=width,
        channel_divisor=divisor,
        resolution=int(graph.input.shape[1]),
        num_classes=num_classes,
        file_classes=file_classes,
        output_stride=stride,
        activation=activation,
        align_corners=align,
        preset=preset,
        input_scale=graph.input.scale,
        input_zero_point=graph.input.zero_point,
    )


def _channel_divisor(backbone: str, width: float, body: list[TFLiteOp]) -> int:
    """8 (TF slim's ``divisible_by``) unless the file's channels follow rounding to 1."""
    if backbone != "mnv2":
        return 8
    found = [int(op.weight.shape[0]) for op in body]
    for divisor in (8, 1):
        model = get_entry("mnv2").builder(width=width, channel_divisor=divisor)
        expected = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
        if expected[: len(found)] == found[: len(expected)]:
            return divisor
    return 8


def _logits_conv(graph: TFLiteGraph, task: str) -> TFLiteOp | None:
    convs = graph.convs()
    if task in ("classification", "segmentation"):
        return convs[-1]
    return None


def _body_convs(graph: TFLiteGraph, task: str) -> list[TFLiteOp]:
    """The backbone's convolutions: everything before the first op that is not a conv or an add."""
    body = []
    for op in graph.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            body.append(op)
        elif op.kind in ("QUANTIZE", "DEQUANTIZE") and not body:
            continue  # TF2 post-training quantized files start by quantizing the uint8 input to int8
        elif op.kind != "ADD":
            break
    return body


def unsupported(graph: TFLiteGraph) -> str:
    """One line naming what a file holds and what the importer reads (for files of an unknown kind)."""
    kinds = sorted({op.kind for op in graph.ops})
    inputs = ", ".join(f"{list(graph.tensors[i].shape)} {graph.tensors[i].dtype}" for i in graph.inputs)
    outputs = ", ".join(f"{list(graph.tensors[i].shape)} {graph.tensors[i].dtype}" for i in graph.outputs)
    return (f"{graph.path}: not a MobileNet checkpoint the importer knows (ops {', '.join(kinds) or 'none'}; "
            f"input {inputs or 'none'}; output {outputs or 'none'}); supported: MobileNetV1/V2 classifiers, "
            "DeepLabv3 MobileNetV2 segmenters and TF SSD MobileNet detectors, float or 8-bit (uint8/int8, "
            "per-tensor or per-channel)")


# -- the matching suite model ------------------------------------------------------------------


def build_model(
    facts: TFLiteFacts, *, backbone: str | None = None, width: float | None = None, builder: ModelBuilder | None = None
) -> nn.Module:
    """The suite's model for ``facts``; ``backbone``/``width`` (user flags) override the file's,
    so a file that does not fit them fails in ``load_tflite_weights`` naming the first layer.
    ``builder`` is the task's (segmentation passes DeepLab's); classification's is the default."""
    builder = builder or MODEL_BUILDERS.get(facts.task)
    if builder is None:
        raise UserError(f"{facts.path}: a {facts.task} checkpoint; import it through the {facts.task} task")
    name = get_entry(backbone).name if backbone else facts.backbone
    if name not in LAST_BODY_CHANNELS:
        raise UserError(f"--backbone {name}: TFLite checkpoints exist only for mnv1 and mnv2")
    options = {
        "width": width if width is not None else facts.width,
        "padding": "tf",
        "activation_layer": ACTIVATION_MODULES[facts.activation],
    }
    if name == "mnv2":
        options["channel_divisor"] = facts.channel_divisor
    return builder(facts, name, options)


def _classifier(facts: TFLiteFacts, name: str, options: dict[str, Any]) -> nn.Module:
    return ImageClassifier(get_entry(name).builder(**options), facts.num_classes)


# builder(facts, backbone name, backbone constructor options) -> the task's model.
ModelBuilder = Callable[[TFLiteFacts, str, dict[str, Any]], nn.Module]
# Classification's model is the backbones layer's; segmentation and detection build their own
# (``SegmentationTask.import_tflite``, ``DetectionTask.import_tflite``).
MODEL_BUILDERS: dict[str, ModelBuilder] = {"classification": _classifier}


# -- weights into a model ----------------------------------------------------------------------


def weighted_layers(
    model: nn.Module, size: int = 64, input_sizes: dict[str, tuple[int, ...]] | None = None
) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every Conv2d and Linear in the order ``forward`` runs them.

    Measured with hooks on one small input, so it follows the real data flow (TFLite files list
    ops in execution order), not the order modules were declared in. ``input_sizes`` (if given)
    receives each layer's input spatial size.
    """
    names = {module: name for name, module in model.named_modules()}
    order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def hook(module: nn.Module, args: Any) -> None:
        if input_sizes is not None and args:
            input_sizes[names[module]] = tuple(args[0].shape[2:])
        if id(module) not in seen:
            seen.add(id(module))
            order.append((names[module], module))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return order


def load_tflite_weights(
    model: nn.Module, path: str | Path | TFLiteGraph, *, facts: TFLiteFacts | None = None
) -> ImportReport:
    """Copy a file's weights into ``model`` (built by ``build_model`` or to the same shape).

    Layers pair up in execution order; each pair must agree in weight shape, stride, dilation,
    padding and activation, else a UserError names the first layer that does not fit.
    """
    graph = path if isinstance(path, TFLiteGraph) else read_tflite(path)
    facts = facts or inspect_tflite(graph)
    sizes: dict[str, tuple[int, ...]] = {}
    layers = weighted_layers(model, input_sizes=sizes)
    ops = _pooling_branches_aligned(graph.convs(), layers, sizes)
    pairs = list(zip(layers, ops, strict=False))
    modules = dict(model.named_modules())
    report = ImportReport(facts, 0, 0)
    projections = _concat_orders(graph, ops, layers)
    for (name, module), op in pairs:
        weight, bias = op.weight, op.bias
        if isinstance(module, nn.Linear):
            weight = weight.flatten(1)
            if weight.shape[0] == module.out_features + 1 == 1001:
                weight, bias = weight[1:], bias[1:]
                report.notes.append(f"{name}: dropped logit 0 (background); class i = file logit i + 1")
        if name in projections:
            weight = torch.cat([weight[:, start:stop] for start, stop in projections[name]], dim=1)
        _check_layer(graph.path, name, module, op, weight, modules)
        with torch.no_grad():
            module.weight.copy_(weight)
            norm = _follower(modules, name, 1)
            if isinstance(norm, nn.BatchNorm2d):
                norm.running_mean.zero_()
                norm.running_var.fill_(1.0 - norm.eps)
                norm.weight.fill_(1.0)
                norm.bias.copy_(bias if bias is not None else torch.zeros_like(norm.bias))
            elif module.bias is not None:
                module.bias.copy_(bias if bias is not None else torch.zeros_like(module.bias))
            elif bias is not None and bias.abs().max() > 0:
                raise UserError(f"{graph.path}: {op.describe()} has a bias but {name} has neither bias nor norm")
        report.layers += 1
        report.values += weight.numel() + (bias.numel() if bias is not None else 0)
    if len(layers) != len(ops):
        if len(layers) > len(ops):
            name, module = layers[len(ops)]
            raise UserError(
                f"{graph.path}: the file ends after {len(ops)} conv layers; the model's {name} "
                f"(weight {list(module.weight.shape)}) has no counterpart"
            )
        raise UserError(
            f"{graph.path}: {ops[len(layers)].describe()} has no counterpart; the model ends after {len(layers)} layers"
        )
    return report


def _pooling_branches_aligned(
    ops: list[TFLiteOp], layers: list[tuple[str, nn.Module]], sizes: dict[str, tuple[int, ...]]
) -> list[TFLiteOp]:
    """The file's convs with DeepLab's two head branches in the suite's order.

    The image-pooling conv (1x1 input) and the 1x1 branch have the same weight shape, and files
    differ in which comes first (the 513 quantized files: 1x1 branch; deeplabv3_257_mv_gpu: pooling),
    so an adjacent pair whose pooled-ness is crossed against the model's is swapped."""
    ops = list(ops)

    def pooled_op(op: TFLiteOp) -> bool:
        return op.input_shape is not None and len(op.input_shape) == 4 and op.input_shape[1:3] == (1, 1)

    def pooled_layer(name: str) -> bool:
        return all(v == 1 for v in sizes.get(name, (0,)))

    for i in range(min(len(ops), len(layers)) - 1):
        if (pooled_op(ops[i]) != pooled_layer(layers[i][0]) and pooled_op(ops[i + 1]) != pooled_layer(layers[i + 1][0])
                and pooled_op(ops[i]) != pooled_op(ops[i + 1])):
            ops[i], ops[i + 1] = ops[i + 1], ops[i]
    return ops


def _follower(modules: dict[str, nn.Module], name: str, offset: int) -> nn.Module | None:
    """The sibling ``offset`` places after ``name`` in its Sequential (a conv's norm, activation)."""
    parent, _, index = name.rpartition(".")
    if not index.isdigit():
        return None
    return modules.get(f"{parent}.{int(index) + offset}" if parent else str(int(index) + offset))


def _check_layer(
    path: Path, name: str, module: nn.Module, op: TFLiteOp, weight: torch.Tensor, modules: dict[str, nn.Module]
) -> None:
    def fail(what: str, expected: Any, found: Any) -> None:
        raise UserError(f"{path}: {op.describe()} does not fit {name}: {what} expected {expected}, found {found}")

    if tuple(module.weight.shape) != tuple(weight.shape):
        fail("weight shape", list(module.weight.shape), list(weight.shape))
    if isinstance(module, nn.Conv2d):
        if op.stride is not None and tuple(module.stride) != op.stride:
            fail("stride", tuple(module.stride), op.stride)
        if op.dilation is not None and tuple(module.dilation) != op.dilation:
            fail("dilation", tuple(module.dilation), op.dilation)
        tf_padded = isinstance(module, Conv2dTFSame) or module.stride == (1, 1)
        if op.padding == "SAME" and not tf_padded:
            fail("padding", "TF SAME (build with padding='tf')", "PyTorch symmetric")
        activation = _follower(modules, name, 2)
        if isinstance(_follower(modules, name, 1), (nn.ReLU, nn.ReLU6)):
            activation = _follower(modules, name, 1)
        found = type(activation).__name__ if isinstance(activation, (nn.ReLU, nn.ReLU6)) else "none"
        expected = {"RELU": "ReLU", "RELU6": "ReLU6"}.get(op.activation or "NONE", "none")
        if op.activation in ("RELU", "RELU6") and found != expected:
            fail("activation", expected, found)


def _concat_orders(
    graph: TFLiteGraph, ops: list[TFLiteOp], layers: list[tuple[str, nn.Module]]
) -> dict[str, list[tuple[int, int]]]:
    """Input-channel slices that reorder a projection after a concatenation of branches.

    DeepLab's TF graph concatenates [image pooling, 1x1 branch]; the suite concatenates its branches
    in execution order. For each CONCATENATION feeding a conv, find the conv that produced each
    concatenated input and list the file's channel slices in the suite's order.
    """
    position = {op.index: i for i, op in enumerate(ops)}
    result: dict[str, list[tuple[int, int]]] = {}
    for concat in graph.of_kind("CONCATENATION"):
        consumer = next((op for op in ops if concat.outputs[0] in op.inputs), None)
        if consumer is None or position[consumer.index] >= len(layers):
            continue
        slices, start = [], 0
        for tensor in concat.inputs:
            channels = graph.tensors[tensor].shape[-1]
            source = _producing_conv(graph, tensor)
            slices.append((position.get(source.index, -1) if source else -1, start, start + channels))
            start += channels
        if any(p < 0 for p, _, _ in slices):
            continue
        slices.sort()  # suite order = execution order of the producing convs
        result[layers[position[consumer.index]][0]] = [(a, b) for _, a, b in slices]
    return result


def _producing_conv(graph: TFLiteGraph, tensor: int) -> TFLiteOp | None:
    """The conv behind ``tensor``, looking through resizes and requantizations."""
    op = graph.producer(tensor)
    while op is not None and op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if op.kind not in ("RESIZE_BILINEAR", "QUANTIZE", "DEQUANTIZE", "RESHAPE"):
            return None
        op = graph.producer(op.inputs[0])
    return op


def import_tflite(
    path: str | Path, *, task: str | None = None, backbone: str | None = None, width: float | None = None,
    builder: ModelBuilder | None = None,
) -> tuple[nn.Module, ImportReport]:
    """Read, build and fill: the suite's model for a file, in eval mode, and the report."""
    graph = read_tflite(path)
    facts = checked_facts(graph, task)
    model = build_model(facts, backbone=backbone, width=width, builder=builder)
    report = load_tflite_weights(model, graph, facts=facts)
    return model.eval(), report
