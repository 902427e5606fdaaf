"""What an official TFLite file is, in the suite's terms, read from its graph without building a model:
task, backbone, width, input size, classes, preset (``inspect_tflite``), and the run config it implies
(``FileConfig``; detection files add their head and post-processing in ``tasks.tflite.detection``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from backbones import get_entry
from backbones.errors import UserError
from backbones.layers import make_divisible
from tasks.provenance import sha256_of
from tasks.tflite.reader import TFLiteGraph, TFLiteOp, read_tflite

# Widths the official MobileNet releases use (depth multipliers); a file's width snaps to one of them.
KNOWN_WIDTHS = (0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# Channels of the last body layer at width 1 (V1 Table 1: 1024; V2 Table 2: 320).
LAST_BODY_CHANNELS = {"mnv1": 1024, "mnv2": 320}
ACTIVATIONS = ("RELU", "RELU6")


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
    activation = body[0].activation if body[0].activation in ACTIVATIONS else "RELU6"
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
