"""OpenVINO on the CPU: the suite's model converted with ``openvino.convert_model``, fp32 or NNCF
static int8, compiled with the latency hint.

Registered in ``benchmark.latency.runtimes.RUNTIMES``.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

from benchmark.latency.runtimes import export
from benchmark.latency.runtimes.base import Prepared, Runtime, output_spec


class OpenVinoRuntime(Runtime):
    def __init__(self, *, int8: bool = False) -> None:
        self.int8 = int8
        self.name = "openvino-int8" if int8 else "openvino"
        self.precision = "int8" if int8 else "fp32"
        self.needs_calibration = int8
        self.description = (
            "OpenVINO CPU, NNCF post-training static int8 calibrated on the task's images, latency hint"
            if int8
            else "OpenVINO CPU, openvino.convert_model with BatchNorm folded, fp32 (inference precision f32), latency hint"
        )

    def unavailable_reason(self) -> str | None:
        return export.format_unavailable("openvino", self.int8)

    def version(self) -> str:
        import openvino

        text = f"openvino {openvino.__version__}"
        if self.int8:
            text += f", nncf {importlib.metadata.version('nncf')}"
        return text

    def prepare(self, model, example, *, threads=1, calibration=()):
        import openvino

        spec = output_spec(model.eval(), example)
        core = openvino.Core()
        with tempfile.TemporaryDirectory(prefix="bench-openvino-") as folder:
            path = Path(folder) / "model.xml"
            details = export.export_model(model, example, "openvino", int8=self.int8, calibration=calibration, out_path=path)
            ov_model = core.read_model(str(path))
            # fp32 asks for f32 explicitly: on CPUs with bf16/fp16 units OpenVINO would otherwise
            # lower the precision on its own, and the fp32 row would not be fp32.
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
            compiled = core.compile_model(ov_model, "CPU", config)
        request = compiled.create_infer_request()

        def forward(x: torch.Tensor) -> Any:
            results = request.infer({0: x.detach().cpu().float().contiguous().numpy()})
            outputs = [torch.from_numpy(results[out].copy()) for out in compiled.outputs]
            return pytree.tree_unflatten(outputs, spec)

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            tensor = openvino.Tensor(x.detach().cpu().float().contiguous().numpy())

            def call() -> None:
                request.set_input_tensor(tensor)
                request.infer()

            return call

        details = {k: v for k, v in details.items() if k != "path"}
        details.update(
            num_streams=int(compiled.get_property("NUM_STREAMS")),
            inference_num_threads=int(compiled.get_property("INFERENCE_NUM_THREADS")),
            inference_precision=str(compiled.get_property("INFERENCE_PRECISION_HINT")),
        )
        return Prepared(forward, bind, static_batch=example.shape[0], details=details, keep_alive=(core, compiled))
