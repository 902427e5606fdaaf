"""ONNX Runtime: torch.onnx export with BatchNorm folded; fp32 (CPU or CUDA) and static int8 (QDQ)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from backbones.errors import UserError
from benchmark.latency.runtimes.base import (
    FlatOutputs,
    Prepared,
    Runtime,
    fold_batchnorm,
    missing_package,
    output_spec,
)
from benchmark.runs.host import this_host

OPSET = 17


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> dict[str, Any]:
    """Export with BatchNorm folded, a dynamic batch axis, and check no BatchNormalization is left.

    Uses the TorchScript exporter (``dynamo=False``): it handles these conv nets in seconds and
    needs no onnxscript; constant folding removes what folding in PyTorch left.
    """
    import onnx

    folded = FlatOutputs(fold_batchnorm(model)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            folded,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["input"],
            dynamic_axes={"input": {0: "batch"}},
        )
    graph = onnx.load(str(path)).graph
    batchnorms = sum(node.op_type == "BatchNormalization" for node in graph.node)
    return {"onnx_opset": OPSET, "onnx_nodes": len(graph.node), "batchnorm_nodes_left": batchnorms}


class OnnxCalibration:
    """ONNX Runtime's CalibrationDataReader over the task's calibration images."""

    def __init__(self, batches: Sequence[torch.Tensor]) -> None:
        self.batches = [b.numpy() for b in batches]
        self.index = 0

    def get_next(self) -> dict[str, Any] | None:
        if self.index >= len(self.batches):
            return None
        self.index += 1
        return {"input": self.batches[self.index - 1]}

    def rewind(self) -> None:
        self.index = 0


class OnnxRuntime(Runtime):
    def __init__(self, *, int8: bool = False, cuda: bool = False) -> None:
        self.int8 = int8
        self.cuda = cuda
        self.name = "onnxruntime" + ("-cuda" if cuda else "") + ("-int8" if int8 else "")
        self.precision = "int8" if int8 else "fp32"
        self.export_format = "onnx"
        self.targets = ("host",) if cuda else ("host", "ssh", "adb")
        self.needs_calibration = int8
        self.provider = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
        if int8:
            self.description = (
                "ONNX Runtime CPU, static int8 (QDQ, per-channel weights), calibrated on the task's images"
            )
        else:
            self.description = f"ONNX Runtime, torch.onnx export with BatchNorm folded, {self.provider}"

    def unavailable_reason(self) -> str | None:
        reason = missing_package("onnxruntime", "onnxruntime") or missing_package("onnx", "onnx")
        if reason:
            return reason
        import onnxruntime

        if self.provider not in onnxruntime.get_available_providers():
            have = ", ".join(onnxruntime.get_available_providers())
            hint = " (install onnxruntime-gpu and use a machine with an NVIDIA GPU)" if self.cuda else ""
            return f"onnxruntime {onnxruntime.__version__} has no {self.provider} (it has: {have}){hint}"
        return None

    def version(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

    def quantize(self, fp32_path: Path, out_path: Path, calibration: Sequence[torch.Tensor]) -> dict[str, Any]:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if not calibration:
            raise UserError(f"--runtime {self.name}: no calibration images (the task's validation data is empty)")
        pre_path = fp32_path.with_name("model.pre.onnx")
        quant_pre_process(str(fp32_path), str(pre_path), skip_symbolic_shape=True)
        # The layers that produce the outputs (classifier, box and class predictors) stay fp32: logits
        # quantized to 8 bits lose the small margins between the top classes, and these layers are a
        # sliver of the compute (the usual "last layer in higher precision" of post-training quantization).
        output_layers = output_producers(onnx.load(str(pre_path)).graph)
        # x86 without VNNI: 7-bit weights avoid int16 saturation in the u8 x s8 kernels
        # (ONNX Runtime's guidance); with VNNI the full range is safe.
        vnni = this_host().int8_dot_product
        quantize_static(
            str(pre_path),
            str(out_path),
            OnnxCalibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=not vnni,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # Every intermediate output of every calibration batch is kept in memory until the end
            # (ONNX Runtime's CalibMaxIntermediateOutputs would bound it, but drops the data it
            # clears), so memory grows with images x pixels: keep --calibration-images modest at 513.
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=output_layers,
        )
        graph = onnx.load(str(out_path)).graph
        return {
            "quantization": "static QDQ, per-channel int8 weights, uint8 activations, MinMax calibration",
            "reduce_range": not vnni,
            "fp32_output_layers": len(output_layers),
            "quantize_nodes": sum(node.op_type == "QuantizeLinear" for node in graph.node),
            "dequantize_nodes": sum(node.op_type == "DequantizeLinear" for node in graph.node),
        }

    def prepare(self, model, example, *, threads=1, calibration=()):
        import onnxruntime

        spec = output_spec(model.eval(), example)
        details: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
            path = Path(folder) / "model.onnx"
            details.update(export_onnx(model, example, path))
            if self.int8:
                quantized = Path(folder) / "model.int8.onnx"
                details.update(self.quantize(path, quantized, calibration))
                path = quantized
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = onnxruntime.InferenceSession(str(path), options, providers=[self.provider])
        details.update(providers=session.get_providers(), intra_op_num_threads=threads)
        if self.cuda:
            details["io_binding"] = "input on the device (OrtValue), outputs bound to the device"
        device = "cuda" if self.cuda else "cpu"

        def forward(x: torch.Tensor) -> Any:
            outputs = session.run(None, {"input": x.detach().cpu().float().numpy()})
            return pytree.tree_unflatten([torch.from_numpy(o) for o in outputs], spec)

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            array = x.detach().cpu().float().contiguous().numpy()
            if self.cuda:  # input copied to the GPU once; outputs stay there: the timed call is the model alone
                return bound_call(session, array, "cuda")[0]
            return lambda: session.run(None, {"input": array})

        return Prepared(forward, bind, device=device, details=details)


def bound_call(session: Any, array: Any, device: str, device_id: int = 0) -> tuple[Callable[[], None], Callable[[], list[Any]]]:
    """ONNX Runtime I/O binding: ``array`` copied once to ``device`` as the input, every output bound
    on ``device``; returns the call (run, then wait for the outputs) and a reader that copies the
    outputs of the last call to the host. With CUDA, the timed call then has no host transfer."""
    import onnxruntime

    binding = session.io_binding()
    value = onnxruntime.OrtValue.ortvalue_from_numpy(array, device, device_id)
    binding.bind_ortvalue_input(session.get_inputs()[0].name, value)
    for output in session.get_outputs():
        binding.bind_output(output.name, device, device_id)

    def call(_input: Any = value) -> None:  # holds the device buffer as long as the call lives
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return call, binding.copy_outputs_to_cpu


# Ops that only move, reshape or resample data: the search for the output layers passes through them.
DATA_MOVEMENT = {"Reshape", "Transpose", "Concat", "Flatten", "Resize", "Identity", "Squeeze", "Unsqueeze", "Slice",
                 "Split", "Gather", "Cast", "Softmax", "Sigmoid"}  # fmt: skip


def output_producers(graph: Any) -> list[str]:
    """Names of the compute nodes whose results reach a graph output through data movement only."""
    producer = {output: node for node in graph.node for output in node.output}
    found: list[str] = []
    stack = [output.name for output in graph.output]
    seen: set[str] = set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in DATA_MOVEMENT:
            stack.extend(node.input)
        else:
            found.append(node.name)
    return found
