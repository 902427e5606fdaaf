"""The official MobileNetV2 TFLite checkpoint's weights in the suite's ``mnv2`` classifier.

No torchvision download is possible offline, and runtime comparisons on real images need trained
weights: the official 8-bit checkpoint (``mobilenet_v2_1.0_224_quant.tflite``) is dequantized into
the suite's model, with TF "SAME" padding on the stride-2 convolutions and the folded BatchNorm
biases in the BatchNorm layers (scale 1). Inputs are in [-1, 1] (``pixel / 127.5 - 1``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backbones.classifier import ImageClassifier, create_classifier
from backbones.errors import UserError


class SamePadConv2d(nn.Conv2d):
    """TF "SAME" padding: a stride-2 convolution pads right and bottom only (on even inputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True):
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _same_pad(conv: nn.Conv2d) -> SamePadConv2d:
    new = SamePadConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
                        conv.groups, bias=conv.bias is not None)  # fmt: skip
    new.load_state_dict(conv.state_dict())
    return new


def _dequantized(interpreter, index: int) -> np.ndarray:
    details = next(d for d in interpreter.get_tensor_details() if d["index"] == index)
    value = interpreter.get_tensor(index).astype(np.float32)
    params = details["quantization_parameters"]
    scales, zeros = params["scales"], params["zero_points"]
    if len(scales) == 0:
        return value
    shape = [1] * value.ndim
    if len(scales) > 1:
        shape[params["quantized_dimension"]] = -1
    return (value - zeros.reshape(shape)) * scales.reshape(shape).astype(np.float32)


@torch.no_grad()
def mobilenet_v2_from_tflite(path: str | Path) -> ImageClassifier:
    """The suite's MobileNetV2 1.0 (1001 classes, 0 = background) with the official file's weights."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    model = create_classifier("mnv2", width=1.0, num_classes=1001).eval()
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(ops) != len(layers):
        raise UserError(f"{path}: {len(ops)} convolutions, the suite's MobileNetV2 1.0 has {len(layers)}")
    batchnorms = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for op, (name, layer) in zip(ops, layers, strict=True):
        weight = torch.from_numpy(_dequantized(interpreter, op["inputs"][1]))
        bias = torch.from_numpy(_dequantized(interpreter, op["inputs"][2]))
        if op["op_name"] == "DEPTHWISE_CONV_2D":
            weight = weight.permute(3, 0, 1, 2)  # [1, kh, kw, C] -> [C, 1, kh, kw]
        else:
            weight = weight.permute(0, 3, 1, 2)  # [out, kh, kw, in] -> [out, in, kh, kw]
        if isinstance(layer, nn.Linear):
            layer.weight.copy_(weight.flatten(1))
            layer.bias.copy_(bias)
            continue
        layer.weight.copy_(weight)
        parent, _, index = name.rpartition(".")
        bn = batchnorms[f"{parent}.{int(index) + 1}"]
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        if layer.stride != (1, 1):
            model.get_submodule(parent)._modules[index] = _same_pad(layer)
    return model
