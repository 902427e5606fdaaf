"""Write small int8 TFLite models with LiteRT's generated flatbuffer schema, for reader/importer tests.

A chain of CONV_2D / DEPTHWISE_CONV_2D layers with per-channel int8 weights and int32 biases, the
layout the official quantized checkpoints use (full-integer TFLite: bias scale = input scale x
weight scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
import torch
from ai_edge_litert import schema_py_generated as schema

ACTIVATION = {"NONE": 0, "RELU": 1, "RELU6": 3}
ACT_SCALE = 0.05  # every activation tensor: int8, this scale, zero point 0


@dataclass
class Conv:
    """One layer: ``weight`` in PyTorch layout ([out, in, kh, kw], depthwise [C, 1, kh, kw])."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: int = 1
    depthwise: bool = False
    activation: str = "NONE"
    dilation: int = 1


def write_tflite(path: str | Path, input_shape: tuple[int, int, int, int], layers: list[Conv]) -> Path:
    path = Path(path)
    buffers = [schema.BufferT()]
    tensors: list[schema.TensorT] = []

    def add_tensor(name, shape, dtype, scales, zero_points, data=None, axis=0) -> int:
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name, np.asarray(shape, np.int32), dtype
        quant = schema.QuantizationParametersT()
        quant.scale, quant.zeroPoint, quant.quantizedDimension = list(scales), list(zero_points), axis
        tensor.quantization = quant
        tensor.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            buffers.append(buffer)
            tensor.buffer = len(buffers) - 1
        tensors.append(tensor)
        return len(tensors) - 1

    codes = []
    for builtin in (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D):
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, builtin, 3
        codes.append(code)

    n, h, w, _ = input_shape
    current = add_tensor("input", input_shape, schema.TensorType.INT8, [ACT_SCALE], [0])
    graph_input, operators = current, []
    for index, layer in enumerate(layers):
        weight = layer.weight.detach().double()
        out_channels = weight.shape[0]
        scales = (weight.abs().flatten(1).amax(1) / 127).clamp_min(1e-8)
        q = torch.round(weight / scales[:, None, None, None]).clamp(-127, 127).to(torch.int8)
        if layer.depthwise:
            stored, axis = q.permute(1, 2, 3, 0).numpy(), 3  # [C, 1, kh, kw] -> [1, kh, kw, C]
        else:
            stored, axis = q.permute(0, 2, 3, 1).numpy(), 0  # [out, in, kh, kw] -> [out, kh, kw, in]
        w_index = add_tensor(f"layer{index}/weights", stored.shape, schema.TensorType.INT8,
                             scales.tolist(), [0] * out_channels, stored, axis)  # fmt: skip
        bias_scales = scales * ACT_SCALE
        qb = torch.round(layer.bias.double() / bias_scales).to(torch.int32).numpy()
        b_index = add_tensor(f"layer{index}/bias", qb.shape, schema.TensorType.INT32,
                             bias_scales.tolist(), [0] * out_channels, qb)  # fmt: skip
        h, w = -(-h // layer.stride), -(-w // layer.stride)
        out = add_tensor(f"layer{index}/output", (n, h, w, out_channels), schema.TensorType.INT8, [ACT_SCALE], [0])
        op = schema.OperatorT()
        op.inputs, op.outputs = np.asarray([current, w_index, b_index], np.int32), np.asarray([out], np.int32)
        if layer.depthwise:
            op.opcodeIndex, op.builtinOptionsType = 1, schema.BuiltinOptions.DepthwiseConv2DOptions
            options = schema.DepthwiseConv2DOptionsT()
            options.depthMultiplier = 1
        else:
            op.opcodeIndex, op.builtinOptionsType = 0, schema.BuiltinOptions.Conv2DOptions
            options = schema.Conv2DOptionsT()
        options.padding = schema.Padding.SAME
        options.strideH = options.strideW = layer.stride
        options.dilationHFactor = options.dilationWFactor = layer.dilation
        options.fusedActivationFunction = ACTIVATION[layer.activation]
        op.builtinOptions = options
        operators.append(op)
        current = out

    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = tensors, operators
    subgraph.inputs, subgraph.outputs = np.asarray([graph_input], np.int32), np.asarray([current], np.int32)
    subgraph.name = "main"
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, codes, [subgraph], buffers
    model.description = "test model"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path
