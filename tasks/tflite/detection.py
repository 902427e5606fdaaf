"""Official TF Object Detection API SSD checkpoints (``.tflite``) into the suite's SSD.

``ssd_mobilenet_v1_coco_quant.tflite`` (``ssd_mobilenet_v1_0.75_depth_quantized_coco``) is the
suite's ``mnv1`` at width 0.75 with ``--head ssd`` (1x1 predictors, width-scaled extra layers), TF
"SAME" padding and ReLU6, 90 classes + background scored by sigmoid. The file's convolutions come
with BatchNorm folded in: each goes into the suite's conv, and the BatchNorm after it becomes the
identity (weight 1, bias = the folded bias, mean 0, variance 1 - eps), so the module structure,
and every export path, stays the suite's. Convolutions are matched in execution order and by
shape; the first that does not fit is a one-line UserError naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones.errors import UserError
from tasks.tflite.outputs import TF_TO_SUITE_CODES
from tasks.tflite.reader import TFLiteGraph, TFLiteOp, read_tflite

# The suite's SSD (tasks.detection.ssdlite.SSDLite): the detection task hands its class in, as
# tasks.detection imports this subsystem and not the other way round.
SSDLite = nn.Module

# TF's SSD anchors as the file stores them: (y centre, x centre, height, width), normalised.
ANCHOR_LAYOUT = "ycenter, xcenter, height, width"


def conv_sequence(model: SSDLite) -> list[tuple[str, nn.Conv2d, nn.Module | None]]:
    """The model's convolutions in TFLite execution order, each with the norm layer after it.

    Backbone and extra layers in module order; then per feature map the box predictor followed
    by the class predictor (the order of TF's ``ConvolutionalBoxPredictor``).
    """
    order: list[tuple[str, nn.Module]] = [
        *((f"backbone.{name}", m) for name, m in model.backbone.named_modules()),
        *((f"extras.{name}", m) for name, m in model.extras.named_modules()),
    ]
    for i, (box, cls) in enumerate(zip(model.regression.layers, model.classification.layers, strict=True)):
        order += [*((f"regression.layers.{i}.{n}", m) for n, m in box.named_modules())]
        order += [*((f"classification.layers.{i}.{n}", m) for n, m in cls.named_modules())]
    sequence: list[tuple[str, nn.Conv2d, nn.Module | None]] = []
    for name, module in order:
        if isinstance(module, nn.Conv2d):
            sequence.append((name.rstrip("."), module, None))
        elif isinstance(module, nn.BatchNorm2d) and sequence and sequence[-1][2] is None:
            sequence[-1] = (sequence[-1][0], sequence[-1][1], module)
    return sequence


def _mismatch(path: Path, op: TFLiteOp | None, name: str, expected: Any) -> UserError:
    found = op.describe() if op is not None else "no more convolutions"
    return UserError(f"{path}: {found} does not fit the model's {name} {list(expected)} "
                     "(a file for another backbone, width, head or class count)")


@torch.no_grad()
def load_ssd_tflite(model: SSDLite, path: str | Path, graph: TFLiteGraph | None = None) -> dict[str, Any]:
    """Copy the file's weights into ``model`` (built for the file's architecture) in place.

    Returns what was read: ``convs`` loaded, the file's ``anchors`` ``[A, 4]`` (y, x, h, w; None
    when the file has no post-processing op) and their quantization step.
    """
    path = Path(path)
    graph = graph or read_tflite(path)
    ops = graph.convs()
    sequence = conv_sequence(model)
    for position, (name, conv, norm) in enumerate(sequence):
        op = ops[position] if position < len(ops) else None
        expected = tuple(conv.weight.shape)
        if op is None or op.weight is None or tuple(op.weight.shape) != expected or op.stride != conv.stride:
            raise _mismatch(path, op, name, expected)
        weight, bias = op.weight, op.bias if op.bias is not None else torch.zeros(expected[0])
        if name.startswith("regression."):
            # Per anchor, reorder the four code channels from TF's (y, x, h, w) to (x, y, w, h).
            perm = torch.arange(expected[0]).view(-1, 4)[:, list(TF_TO_SUITE_CODES)].reshape(-1)
            weight, bias = weight[perm], bias[perm]
        conv.weight.copy_(weight)
        if norm is not None:
            if conv.bias is not None:
                conv.bias.zero_()
            norm.weight.fill_(1.0)
            norm.bias.copy_(bias)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
        elif conv.bias is not None:
            conv.bias.copy_(bias)
        else:
            raise _mismatch(path, op, name, expected)
    if len(ops) != len(sequence):
        raise UserError(f"{path}: {ops[len(sequence)].describe()} has no counterpart in the model "
                        "(a file for another backbone, width or head)")
    anchors, step = file_anchors(graph)
    return {"convs": len(sequence), "anchors": anchors, "anchor_step": step}


def file_anchors(graph: TFLiteGraph) -> tuple[torch.Tensor | None, float]:
    """The anchors embedded in the ``TFLite_Detection_PostProcess`` op and their quantization step."""
    post = graph.of_kind("TFLite_Detection_PostProcess")
    if not post:
        return None, 0.0
    tensor = post[0].inputs[2]
    return graph.constant(tensor).float(), graph.tensors[tensor].scale


# TFLite_Detection_PostProcess's defaults for options a file leaves out (detection_postprocess.cc).
POSTPROCESS_DEFAULTS = {"detections_per_class": 100, "use_regular_nms": False}


def file_postprocess(graph: TFLiteGraph) -> dict[str, Any] | None:
    """The file's ``TFLite_Detection_PostProcess`` options, as read (None: the file has no such op)."""
    post = graph.of_kind("TFLite_Detection_PostProcess")
    if not post:
        return None
    options = {**POSTPROCESS_DEFAULTS, **{k: v for k, v in post[0].options.items() if not k.startswith("_")}}
    # float32 in the file: 7 significant digits give back the value written (0.6, not 0.600000024).
    return {k: (float(f"{v:.7g}") if isinstance(v, float) else v) for k, v in sorted(options.items())}


def postprocess_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The suite's detection settings that reproduce a file's post-processing op.

    Fast NMS (``use_regular_nms`` false) is ``nms: fast`` with the file's classes per detection;
    regular NMS is the suite's class-wise NMS. Box scales become the decoder's (x, y, w, h) weights."""
    settings: dict[str, Any] = {
        "nms": "class-wise" if options.get("use_regular_nms") else "fast",
        "max_detections": int(options["max_detections"]),
        "nms_iou": float(options["nms_iou_threshold"]),
        "score_threshold": float(options["nms_score_threshold"]),
        "max_classes_per_detection": int(options.get("max_classes_per_detection", 1)),
    }
    if all(key in options for key in ("x_scale", "y_scale", "w_scale", "h_scale")):
        settings["box_scales"] = [float(options[key]) for key in ("x_scale", "y_scale", "w_scale", "h_scale")]
    return settings


def anchors_as_ycxchw(anchors: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """The suite's pixel (x0, y0, x1, y1) anchors in the file's normalised (y, x, h, w) layout."""
    height, width = image_size
    x0, y0, x1, y1 = anchors.unbind(-1)
    return torch.stack([(y0 + y1) / 2 / height, (x0 + x1) / 2 / width, (y1 - y0) / height, (x1 - x0) / width], -1)


def ycxchw_as_anchors(anchors: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """The file's normalised (y, x, h, w) anchors as the suite's pixel (x0, y0, x1, y1) ones."""
    height, width = image_size
    yc, xc, h, w = anchors.double().unbind(-1)
    corners = torch.stack([(xc - w / 2) * width, (yc - h / 2) * height, (xc + w / 2) * width, (yc + h / 2) * height], -1)
    return corners.float()


def ssd_for_tflite(cfg: dict[str, Any], graph: TFLiteGraph | None, ssd_class: Callable[..., SSDLite]) -> SSDLite:
    """The suite's SSD (``ssd_class``) for an official TF SSD ``.tflite`` (``cfg["weights"]``), weights loaded.

    The architecture comes from ``cfg`` (backbone, width, head, classes) with TF's conventions
    (SAME padding, ReLU6); the file must fit it, else a one-line UserError names the first layer
    that does not.
    """
    from backbones import backbone_options, get_entry

    options = dict(backbone_options(cfg), padding="tf", activation_layer=nn.ReLU6)
    try:
        backbone = get_entry(cfg["backbone"]).builder(**options)
    except (TypeError, ValueError) as error:
        raise UserError(f"--backbone {cfg['backbone']}: cannot take TF weights ({error})") from None
    model = ssd_class(
        backbone,
        int(cfg["num_classes"]),
        head=cfg.get("head") or "ssd",
        width=cfg.get("width") or 1.0,
        predictor_kernel=cfg.get("predictor_kernel") or 1,
        padding="tf",
    )
    info = load_ssd_tflite(model, cfg["weights"], graph)
    model.eval()
    if info["anchors"] is not None:
        size = (int(cfg["resolution"]), int(cfg["resolution"]))
        ours = anchors_as_ycxchw(model.anchors(size), size)
        if ours.shape != info["anchors"].shape:
            raise UserError(f"{cfg['weights']}: {len(info['anchors'])} anchors in the file, the model makes "
                            f"{len(ours)} at --resolution {cfg['resolution']}")
        gap = float((ours - info["anchors"]).abs().max())
        # The file stores its anchors 8-bit quantized: they agree within half a step.
        if gap > 0.5 * info["anchor_step"] + 1e-6:
            raise UserError(f"{cfg['weights']}: the file's anchors differ from TF's generator by {gap:.4f} "
                            f"(more than half their quantization step {info['anchor_step']:.4f})")
        # The file's op decodes against these, not the generator's: so do the suite's evaluations.
        model.use_anchors(size, ycxchw_as_anchors(info["anchors"], size))
    if int(cfg["num_classes"]) == 90:
        model.label_map = "coco90"  # TF's COCO label map: label i is category i + 1 (the evaluator reads it)
    return model


def ssd_file_config(graph: TFLiteGraph, facts: Any, *, backbone: str | None = None, width: float | None = None) -> Any:
    """A TF SSD file's config, read without building the model: its classes, width and preset, the
    head it needs (SSD, 1x1 predictors, TF's 90-id label map) and its own post-processing."""
    from dataclasses import replace

    from backbones import get_entry
    from tasks.tflite.facts import FileConfig

    post = graph.of_kind("TFLite_Detection_PostProcess")
    file_classes = int(graph.tensors[post[0].inputs[1]].shape[-1]) if post else 91
    name = get_entry(backbone).name if backbone else facts.backbone
    facts = replace(facts, num_classes=file_classes - 1, file_classes=file_classes, preset="tf-ssd",
                    width=width or _backbone_width(graph, name) or facts.width)  # fmt: skip
    # TF's COCO label map: label i is category i + 1 (the evaluator reads it).
    options = {"head": "ssd", "predictor_kernel": 1, "label_map": "coco90" if facts.num_classes == 90 else None}
    post_options = file_postprocess(graph)
    if post_options is None:
        return FileConfig(facts, options)
    # The file's own post-processing is the default evaluation (bench eval prints and records it).
    evaluation = postprocess_settings(post_options)
    options.update(postprocess_options=post_options, postprocess=evaluation)
    return FileConfig(facts, options, post_options, evaluation)


def import_ssd(
    graph: TFLiteGraph,
    facts: Any,
    *,
    ssd_class: Callable[..., SSDLite],
    backbone: str | None = None,
    width: float | None = None,
) -> tuple[SSDLite, Any]:
    """``tasks.tflite.importer.import_tflite`` for detection files: the suite's SSD and the report."""
    from backbones import get_entry
    from tasks.tflite.importer import ImportReport

    file = ssd_file_config(graph, facts, backbone=backbone, width=width)
    cfg = {
        "backbone": get_entry(backbone).name if backbone else facts.backbone,
        "width": file.facts.width,
        "head": "ssd",
        "num_classes": file.facts.num_classes,
        "resolution": file.facts.resolution,
        "weights": str(graph.path),
    }
    model = ssd_for_tflite(cfg, graph, ssd_class)
    convs = conv_sequence(model)
    notes = ["anchors: the file's (TF's ssd_anchor_generator within half their 8-bit quantization step), "
             "as its post-processing op decodes against them"]
    if getattr(model, "label_map", None):
        notes.append("label map coco90: label i is COCO category i + 1")
    values = sum(conv.weight.numel() + (norm.bias.numel() if norm is not None else conv.bias.numel())
                 for _, conv, norm in convs)
    report = ImportReport(facts=file.facts, layers=len(convs), values=values, notes=notes, options=file.options,
                          postprocess=file.postprocess, evaluation=file.evaluation)  # fmt: skip
    return model.eval(), report


def _backbone_width(graph: TFLiteGraph, name: str) -> float | None:
    """The released width whose backbone's convolutions are the file's first ones (None: none is).

    (The generic inspection reads the width off the last body conv, which for SSD files is a box
    predictor.)"""
    from backbones import get_entry
    from tasks.tflite.facts import KNOWN_WIDTHS

    found = [tuple(op.weight.shape) for op in graph.convs()]
    for width in KNOWN_WIDTHS:
        try:
            backbone = get_entry(name).builder(width=width)
        except (TypeError, ValueError):
            return None
        shapes = [tuple(m.weight.shape) for m in backbone.modules() if isinstance(m, nn.Conv2d)]
        if shapes == found[: len(shapes)]:
            return width
    return None
