"""A quantized ``.tflite`` file's float shadow, op by op: every op of the graph in float32.

``tasks.tflite.int8`` runs the file's integers; this runs the same ops on the same NHWC layout in
float: the input dequantized, weights and biases dequantized (``TFLiteGraph``'s constants), fused
activations as float clamps, QUANTIZE / DEQUANTIZE as the identity, and no output rounding. So each
tensor here is what the integer tensor of the same index approximates, and ``run_op`` can be fed the
integer path's own (dequantized) inputs: the layer-wise comparison of ``tasks.tflite.compare``.

It is not the suite's float import (``tasks.tflite.importer``): that one is the suite's own model and
takes the preset's normalised image; this one is the file's graph on the file's dequantized input
bytes. On the same float input the two agree to float32 rounding (tests/test_realdata_compare_float.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from backbones.errors import UserError
from backbones.layers import tf_same_padding
from tasks.tflite.int8 import INT_RANGES
from tasks.tflite.reader import ACTIVATIONS, TFLiteGraph, TFLiteOp

# Fused activations as float clamps (TFLite's ActivationFunctionType).
CLAMPS = {"NONE": None, "RELU": (0.0, None), "RELU_N1_TO_1": (-1.0, 1.0), "RELU6": (0.0, 6.0)}
Values = dict[int, torch.Tensor]


class FloatTFLite:
    """The ops of a file in float32; ``run_op(op, values)`` -> the op's output from float inputs."""

    def __init__(self, graph: TFLiteGraph) -> None:
        self.graph = graph
        self.kernels = {
            "CONV_2D": self.conv,
            "DEPTHWISE_CONV_2D": self.conv,
            "ADD": self.add,
            "AVERAGE_POOL_2D": self.average_pool,
            "MEAN": self.mean,
            "CONCATENATION": self.concatenation,
            "LOGISTIC": lambda op, values: torch.sigmoid(self.input(op, values)),
            "SOFTMAX": self.softmax,
            "RESHAPE": self.reshape,
            "RESIZE_BILINEAR": self.resize_bilinear,
            "QUANTIZE": self.input,  # a float shadow does not round
            "DEQUANTIZE": self.input,
        }

    def dequantize_input(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The file's input bytes as the floats they stand for: ``(q - zero_point) * scale``."""
        info = self.graph.input
        values = torch.as_tensor(np.asarray(pixels)).double()
        return ((values - info.zero_point) * info.scale).float() if info.scale else values.float()

    @torch.no_grad()
    def run(self, pixels: np.ndarray, outputs: list[int]) -> tuple[list[torch.Tensor], Values]:
        """The graph from the file's input bytes until every tensor in ``outputs`` is computed;
        returns those tensors and every one computed."""
        values: Values = {self.graph.inputs[0]: self.dequantize_input(pixels)}
        for op in self.graph.ops:
            if all(i in values for i in outputs):
                break
            values[op.outputs[0]] = self.run_op(op, values)
        return [values[i] for i in outputs], values

    def run_op(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        """One op on float tensors in ``values`` (constants come from the file, dequantized)."""
        if op.kind not in self.kernels:
            raise UserError(f"{self.graph.path}: the float graph does not support {op.kind} ({op.describe()}); "
                            f"supported: {', '.join(self.kernels)}")
        return self.kernels[op.kind](op, values)

    # -- helpers ---------------------------------------------------------------------------------
    def value(self, index: int, values: Values) -> torch.Tensor:
        return values[index] if index in values else self.graph.constant(index).float()

    def input(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        return self.value(op.inputs[0], values)

    def activate(self, op: TFLiteOp, x: torch.Tensor) -> torch.Tensor:
        name = ACTIVATIONS.get(int(op.options.get("fusedActivationFunction", 0)))
        if name not in CLAMPS:
            raise UserError(f"{self.graph.path}: fused activation {name} of {op.describe()} is not supported")
        if name == "NONE":
            name = self.implied_activation(op)
        bounds = CLAMPS[name]
        return x if bounds is None else x.clamp(*bounds)

    def implied_activation(self, op: TFLiteOp) -> str:
        """A ReLU the converter left in the output's range rather than in the op: the SSD's body convs
        are "NONE" with outputs quantized to [0, 6] (zero point at the type's minimum). Such an output
        is RELU6 when its top is within a step of 6, else RELU; any other output is linear."""
        info = self.graph.tensors[op.outputs[0]]
        if not info.scale or info.dtype not in INT_RANGES or info.zero_point != INT_RANGES[info.dtype][0]:
            return "NONE"
        top = (INT_RANGES[info.dtype][1] - info.zero_point) * info.scale
        return "RELU6" if abs(top - 6.0) <= info.scale else "RELU"

    # -- ops -------------------------------------------------------------------------------------
    def conv(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        x = self.input(op, values).permute(0, 3, 1, 2)
        stride, dilation = op.stride or (1, 1), op.dilation or (1, 1)
        groups = x.shape[1] if op.kind == "DEPTHWISE_CONV_2D" else 1
        if op.padding == "SAME":  # TF pads (total // 2) before and the rest after (the integer path's zero point)
            pads = [tf_same_padding(size, k, s, d) for size, k, s, d in zip(x.shape[2:], op.weight.shape[2:], stride, dilation, strict=True)]
            x = F.pad(x, (*pads[1], *pads[0]))
        y = F.conv2d(x, op.weight, op.bias, stride=stride, dilation=dilation, groups=groups)
        return self.activate(op, y.permute(0, 2, 3, 1))

    def add(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        return self.activate(op, self.value(op.inputs[0], values) + self.value(op.inputs[1], values))

    def average_pool(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        x = self.input(op, values).permute(0, 3, 1, 2)
        kernel = (int(op.options["filterHeight"]), int(op.options["filterWidth"]))
        if op.padding != "VALID" and kernel != tuple(x.shape[2:]):
            raise UserError(f"{self.graph.path}: AVERAGE_POOL_2D with SAME padding is not supported ({op.describe()})")
        y = F.avg_pool2d(x, kernel, op.stride)
        return self.activate(op, y.permute(0, 2, 3, 1))

    def mean(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        axes = sorted({int(a) % 4 for a in self.graph.stored[op.inputs[1]].reshape(-1)})
        return self.input(op, values).mean(dim=axes, keepdim=bool(op.options.get("keepDims", True)))

    def concatenation(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        parts = [self.value(i, values) for i in op.inputs]
        return self.activate(op, torch.cat(parts, dim=int(op.options.get("axis", -1))))

    def softmax(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        return torch.softmax(float(op.options.get("beta", 1.0)) * self.input(op, values), dim=-1)

    def reshape(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        x = self.input(op, values)
        return x.reshape(x.shape[0], *self.graph.tensors[op.outputs[0]].shape[1:])  # the file's batch is 1

    def resize_bilinear(self, op: TFLiteOp, values: Values) -> torch.Tensor:
        """TFLite's float ``ResizeBilinear``: source position ``dst * scale`` (``(dst + 0.5) * scale - 0.5``
        with half-pixel centers), ``scale = (in - 1) / (out - 1)`` with align corners, else ``in / out``."""
        x = self.input(op, values)
        out_h, out_w = (int(v) for v in self.graph.stored[op.inputs[1]])
        align, half = bool(op.options.get("alignCorners")), bool(op.options.get("halfPixelCenters"))
        fy, y0, y1 = _interpolation(x.shape[1], out_h, align, half)
        fx, x0, x1 = _interpolation(x.shape[2], out_w, align, half)
        fy, fx = fy.view(1, -1, 1, 1), fx.view(1, 1, -1, 1)
        top, bottom = x[:, y0], x[:, y1]
        return (top[:, :, x0] * (1 - fy) * (1 - fx) + bottom[:, :, x0] * fy * (1 - fx)
                + top[:, :, x1] * (1 - fy) * fx + bottom[:, :, x1] * fy * fx)


def _interpolation(size: int, out_size: int, align: bool, half: bool) -> tuple[torch.Tensor, ...]:
    """TFLite's ``ComputeInterpolationValues`` for every output row (or column): the fraction past
    the lower source index, and the lower and upper source index."""
    scale = np.float32((size - 1) / (out_size - 1) if align and out_size > 1 else size / out_size)
    steps = torch.arange(out_size, dtype=torch.float32)
    position = (steps + 0.5) * float(scale) - 0.5 if half else steps * float(scale)
    lower = position.floor().clamp_min(0)
    upper = position.ceil().clamp_max(size - 1)
    return position - lower, lower.long(), upper.long()
