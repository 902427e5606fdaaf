"""A given ``.tflite`` file as its own runtime row (``bench latency --tflite FILE``): the official
uint8 checkpoints timed as shipped, and gated against the suite's eager fp32 model.

Timing: the file through LiteRT's interpreter (XNNPACK) exactly as published, fed in its own input
range (uint8 pixels for the official files). Gate: the suite's evaluation needs the network's raw
outputs, which the official files hide behind a last post-processing op (classification: SOFTMAX;
segmentation: ARG_MAX; detection: TFLite_Detection_PostProcess with its own NMS). A second
interpreter, with every tensor kept and the builtin kernels, reads that op's inputs and maps them
onto the suite's outputs: NHWC to NCHW, the background logit dropped, TF's box codes reordered.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from backbones.errors import UserError
from benchmark.latency.runtimes.base import Prepared, Runtime, output_spec
from benchmark.latency.runtimes.export import missing_extra
from benchmark.latency.runtimes.litert import dequantizing_reader, input_converter, prepare_tflite_file
from tasks.tflite.outputs import POSTPROCESS_OPS, match_reference


def raw_output_tensors(ops: Sequence[dict[str, Any]], outputs: set[int]) -> tuple[list[int], str | None]:
    """Tensor indices of the file's raw outputs and the post-processing op that hides them (or the
    file's own outputs and None). Detection: (class logits, box codes), the suite's output order; the
    logits are the LOGISTIC op's input when the scores come from one."""
    producer = {tensor: op for op in ops for tensor in op["outputs"]}
    for op in reversed(ops):
        if not set(op["outputs"]) & outputs or op["op_name"] not in POSTPROCESS_OPS:
            continue
        if op["op_name"] != "TFLite_Detection_PostProcess":
            return [int(op["inputs"][0])], op["op_name"]
        boxes, scores = int(op["inputs"][0]), int(op["inputs"][1])
        logistic = producer.get(scores)
        if logistic is not None and logistic["op_name"] == "LOGISTIC":
            scores = int(logistic["inputs"][0])
        return [scores, boxes], op["op_name"]
    return sorted(outputs), None


class TfliteFileRuntime(Runtime):
    """``--tflite FILE``: the file itself, not an export of the suite's model."""

    layout = "the file's own (NHWC)"

    def __init__(self, path: str | Path, pixels: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> None:
        self.path = Path(path)
        self.pixels = pixels
        self.name = "litert-file"
        self.description = f"LiteRT interpreter (XNNPACK) on the given file {self.path.name}, timed as shipped"
        self.precision = "file"

    def unavailable_reason(self) -> str | None:
        if self.path.suffix != ".tflite":
            return f"{self.path} is not a .tflite file"
        if not self.path.is_file():
            return f"{self.path} does not exist"
        return missing_extra(("ai_edge_litert.interpreter",), "litert")

    def check_available(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise UserError(f"--tflite: {reason}")
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(self.path))
        except (ValueError, RuntimeError) as error:
            raise UserError(f"--tflite: {self.path} cannot be loaded ({error})") from None
        (detail,) = interpreter.get_input_details()[:1]
        kind = np.dtype(detail["dtype"]).name
        self.precision = {"uint8": "uint8", "int8": "int8", "float32": "fp32", "float16": "fp16"}.get(kind, kind)

    def version(self) -> str:
        return f"ai-edge-litert {importlib.metadata.version('ai-edge-litert')}"

    def prepare(self, model: nn.Module, example: torch.Tensor, *, threads: int = 1, calibration=()) -> Prepared:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        from tasks.provenance import sha256_of

        timed = prepare_tflite_file(self.path, threads, pixels=self.pixels)
        with torch.no_grad():
            reference_out = model.eval()(example)
        spec = output_spec(model, example)
        reference = [t for t in pytree.tree_leaves(reference_out) if isinstance(t, torch.Tensor)]
        # The gate's interpreter: builtin kernels (a delegate hides its inner tensors), every tensor kept.
        gate = Interpreter(
            model_path=str(self.path), num_threads=threads, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        gate.allocate_tensors()
        (input_detail,) = gate.get_input_details()
        raw, final_op = raw_output_tensors(gate._get_ops_details(), {d["index"] for d in gate.get_output_details()})
        read = dequantizing_reader(gate, gate.get_tensor_details())
        to_input = input_converter(input_detail, self.path, self.pixels)

        def forward(x: torch.Tensor) -> Any:
            gate.set_tensor(input_detail["index"], to_input(x))
            gate.invoke()
            return pytree.tree_unflatten(match_reference([read(i) for i in raw], reference, final_op), spec)

        forward(example)  # a file that does not match the suite's model fails here, as a one-line error
        details = dict(timed.details)
        details.update(
            tflite_sha256=sha256_of(self.path),
            gate_reads="inputs of " + final_op if final_op else "the file's outputs",
            gate_kernels="TFLite builtin (no delegate), all tensors kept",
        )
        return Prepared(forward, timed.bind, static_batch=timed.static_batch, details=details,
                        keep_alive=(timed.keep_alive, gate))
