"""Official TFLite checkpoints into the suite's own task models.

``tasks.tflite.facts.inspect_tflite`` says what a file is (task, backbone, width, input size,
classes, preset); ``build_model`` builds the matching suite model (TF "SAME" padding, ReLU6, align-corners
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
from backbones.layers import Conv2dTFSame
from tasks.tflite.facts import LAST_BODY_CHANNELS, TFLiteFacts, checked_facts, inspect_tflite
from tasks.tflite.reader import TFLiteGraph, TFLiteOp, read_tflite

ACTIVATION_MODULES = {"RELU": nn.ReLU, "RELU6": nn.ReLU6}



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
