"""Read a TensorFlow Lite model into a small typed graph of float PyTorch tensors.

The official MobileNet / DeepLab / SSD checkpoints are released as 8-bit ``.tflite`` files. LiteRT's
interpreter (``ai_edge_litert``) gives the tensors, their quantization and the ops in execution
order; the layer options it does not expose (strides, padding, dilation, fused activation, resize
mode) come from the same file through LiteRT's generated flatbuffer schema. Constants are
dequantized as ``(q - zero_point) * scale``, per output channel where the tensor has per-channel
scales, and conv weights are returned in PyTorch's layout.

Nothing here knows about the suite's models: ``tasks.tflite.importer`` (and ``.detection``) map the
graph onto them; ``tasks.tflite.int8`` runs its stored integers. The raw (still quantized) constants
and every tensor's full quantization (per-channel scales included) are kept for the latter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backbones.errors import UserError

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# TFLite's ActivationFunctionType and Padding enums (schema.fbs).
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
PADDINGS = {0: "SAME", 1: "VALID"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph: NHWC ``shape`` as stored, and its quantization.

    ``scale``/``zero_point`` are the first (per-tensor) pair; ``scales``/``zero_points`` hold one per
    channel along ``quantized_dimension`` where the file quantizes per channel (empty: float tensor).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0


@dataclass(frozen=True)
class TFLiteOp:
    """One op in execution order.

    ``weight``/``bias`` are float32 PyTorch-layout tensors for convolutions (CONV_2D
    ``[out, kh, kw, in]`` -> ``[out, in, kh, kw]``; DEPTHWISE_CONV_2D ``[1, kh, kw, C]`` ->
    ``[C, 1, kh, kw]``) and fully connected layers (``[out, in]``), else ``None``. ``stride``,
    ``dilation``, ``padding`` ("SAME"/"VALID") and ``activation`` (fused: "NONE", "RELU", "RELU6")
    are set where the op has them; ``options`` holds every builtin option as read from the file (a
    custom op's FlexBuffer options, e.g. ``TFLite_Detection_PostProcess``'s ``max_detections``).
    """

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...]
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    stride: tuple[int, int] | None = None
    dilation: tuple[int, int] | None = None
    padding: str | None = None
    activation: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``op 12 CONV_2D [128, 64, 1, 1]``: how error messages name a layer."""
        shape = list(self.weight.shape) if self.weight is not None else list(self.output_shape)
        return f"op {self.index} {self.kind} {shape}"


@dataclass(frozen=True)
class TFLiteGraph:
    """The ops of a ``.tflite`` file's main subgraph in execution order, plus its tensors."""

    path: Path
    ops: tuple[TFLiteOp, ...]
    tensors: dict[int, TensorInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    constants: dict[int, np.ndarray]  # dequantized float32 arrays, raw TFLite layout
    stored: dict[int, np.ndarray] = field(default_factory=dict)  # the same constants as the file stores them

    @property
    def input(self) -> TensorInfo:
        return self.tensors[self.inputs[0]]

    def of_kind(self, *kinds: str) -> list[TFLiteOp]:
        return [op for op in self.ops if op.kind in kinds]

    def convs(self) -> list[TFLiteOp]:
        """CONV_2D and DEPTHWISE_CONV_2D ops in execution order."""
        return self.of_kind(*CONV_OPS)

    def producer(self, tensor: int) -> TFLiteOp | None:
        """The op that writes ``tensor`` (None for graph inputs and constants)."""
        return next((op for op in self.ops if tensor in op.outputs), None)

    def constant(self, tensor: int) -> torch.Tensor:
        """A constant tensor, dequantized, in its stored (TFLite) layout."""
        if tensor not in self.constants:
            raise KeyError(f"tensor {tensor} of {self.path} is not a constant")
        return torch.from_numpy(self.constants[tensor])


def dequantize(values: np.ndarray, quantization: dict[str, Any]) -> np.ndarray:
    """``(q - zero_point) * scale`` as float32; per channel along ``quantized_dimension`` when the
    tensor has one scale per channel; float tensors pass through."""
    scales = np.asarray(quantization.get("scales", ()), dtype=np.float64)
    if scales.size == 0 or not np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float32)
    zero_points = np.asarray(quantization.get("zero_points", ()), dtype=np.float64)
    if zero_points.size == 0:
        zero_points = np.zeros_like(scales)
    if scales.size > 1:
        shape = [1] * values.ndim
        shape[int(quantization.get("quantized_dimension", 0))] = scales.size
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return ((values.astype(np.float64) - zero_points) * scales).astype(np.float32)


def read_tflite(path: str | Path) -> TFLiteGraph:
    """Parse ``path``; a missing, truncated or non-TFLite file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: TFLite file does not exist")
    data = path.read_bytes()
    # A FlatBuffer TFLite model carries the identifier "TFL3" at bytes 4..8.
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UserError(f"{path}: not a TFLite model (no TFL3 identifier)")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # Without default delegates: XNNPACK would fold ops into DELEGATE nodes; we want the file's ops.
        interpreter = Interpreter(
            model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        interpreter.allocate_tensors()
        details = {int(t["index"]): t for t in interpreter.get_tensor_details()}
        op_details = interpreter._get_ops_details()
        options = _builtin_options(data)
    except UserError:
        raise
    except Exception as error:  # the interpreter reports a bad buffer as ValueError or RuntimeError
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path}: unreadable TFLite model ({reason})") from None
    if len(options) != len(op_details):
        raise UserError(f"{path}: TFLite model has {len(options)} operators but the interpreter ran {len(op_details)}")

    tensors = {
        index: TensorInfo(
            index=index,
            name=str(t["name"]),
            shape=tuple(int(v) for v in t["shape"]),
            dtype=np.dtype(t["dtype"]).name,
            scale=float(t["quantization"][0]),
            zero_point=int(t["quantization"][1]),
            scales=tuple(float(v) for v in t["quantization_parameters"]["scales"]),
            zero_points=tuple(int(v) for v in t["quantization_parameters"]["zero_points"]),
            quantized_dimension=int(t["quantization_parameters"]["quantized_dimension"]),
        )
        for index, t in details.items()
    }
    constant_ids = options.constant_tensors
    constants: dict[int, np.ndarray] = {}
    stored: dict[int, np.ndarray] = {}
    for index in constant_ids:
        if index in details:
            stored[index] = np.array(interpreter.get_tensor(index))
            constants[index] = dequantize(stored[index], details[index]["quantization_parameters"])

    ops = []
    for op, kind_options in zip(op_details, options.per_op, strict=True):
        inputs = tuple(int(i) for i in op["inputs"])
        outputs = tuple(int(i) for i in op["outputs"])
        ops.append(_make_op(int(op["index"]), str(op["op_name"]), inputs, outputs, tensors, constants, kind_options))
    graph_inputs = tuple(int(d["index"]) for d in interpreter.get_input_details())
    graph_outputs = tuple(int(d["index"]) for d in interpreter.get_output_details())
    return TFLiteGraph(path, tuple(ops), tensors, graph_inputs, graph_outputs, constants, stored)


@dataclass(frozen=True)
class _FileOptions:
    per_op: list[dict[str, Any]]
    constant_tensors: list[int]

    def __len__(self) -> int:
        return len(self.per_op)


def _builtin_options(data: bytes) -> _FileOptions:
    """Builtin options of each operator of subgraph 0, and which tensors hold constant data."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    subgraph = model.subgraphs[0]
    per_op = [_op_options(op) for op in subgraph.operators]
    constant = [
        index
        for index, tensor in enumerate(subgraph.tensors)
        if tensor.buffer > 0 and model.buffers[tensor.buffer].data is not None and len(model.buffers[tensor.buffer].data)
    ]
    return _FileOptions(per_op, constant)


def _op_options(op: Any) -> dict[str, Any]:
    """A builtin op's options, or a custom op's (``TFLite_Detection_PostProcess``: a FlexBuffer map)."""
    if op.builtinOptions is not None:
        return dict(vars(op.builtinOptions))
    if op.customOptions is not None and len(op.customOptions):
        from flatbuffers import flexbuffers

        decoded = flexbuffers.Loads(bytes(bytearray(op.customOptions)))
        return dict(decoded) if isinstance(decoded, dict) else {}
    return {}


def _make_op(
    index: int,
    kind: str,
    inputs: tuple[int, ...],
    outputs: tuple[int, ...],
    tensors: dict[int, TensorInfo],
    constants: dict[int, np.ndarray],
    options: dict[str, Any],
) -> TFLiteOp:
    weight = bias = None
    if kind in (*CONV_OPS, "FULLY_CONNECTED") and len(inputs) > 1 and inputs[1] in constants:
        raw = torch.from_numpy(constants[inputs[1]])
        if kind == "CONV_2D":
            weight = raw.permute(0, 3, 1, 2).contiguous()  # [out, kh, kw, in] -> [out, in, kh, kw]
        elif kind == "DEPTHWISE_CONV_2D":
            weight = raw.permute(3, 0, 1, 2).contiguous()  # [1, kh, kw, C] -> [C, 1, kh, kw]
        else:
            weight = raw.clone()  # [out, in], as nn.Linear
        if len(inputs) > 2 and inputs[2] >= 0 and inputs[2] in constants:
            bias = torch.from_numpy(constants[inputs[2]]).clone()
    stride = dilation = None
    if "strideH" in options:
        stride = (int(options["strideH"]), int(options["strideW"]))
    if "dilationHFactor" in options:
        dilation = (int(options["dilationHFactor"]), int(options["dilationWFactor"]))
    activation = ACTIVATIONS.get(options["fusedActivationFunction"]) if "fusedActivationFunction" in options else None
    padding = PADDINGS.get(options["padding"]) if "padding" in options else None
    first = next((i for i in inputs if i >= 0 and i not in constants), None)
    return TFLiteOp(
        index=index,
        kind=kind,
        inputs=inputs,
        outputs=outputs,
        input_shape=tensors[first].shape if first is not None else None,
        output_shape=tensors[outputs[0]].shape if outputs else (),
        weight=weight,
        bias=bias,
        stride=stride,
        dilation=dilation,
        padding=padding,
        activation=activation,
        options=dict(options),
    )
