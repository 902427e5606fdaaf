"""OpenVINO on the CPU: the suite's model converted with ``openvino.convert_model``, fp32, bf16 (CPUs
with native bf16 only) or NNCF static int8, compiled with the latency hint.

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

from backbones.errors import UserError
from benchmark.latency.runtimes import export
from benchmark.latency.runtimes.base import Prepared, Runtime, output_spec
from benchmark.latency.runtimes.cpu_bf16 import bf16_unavailable_reason

# The INFERENCE_PRECISION_HINT each float precision asks for (int8 graphs keep OpenVINO's default).
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


def precision_name(compiled_precision: Any) -> str:
    """OpenVINO's compiled ``INFERENCE_PRECISION_HINT`` as the suite's label (fp32, bf16, fp16).

    Read as an ``openvino.Type`` (OpenVINO 2024 and later return one; its ``str`` changed from
    ``f32`` to ``<Type: 'float32'>`` in 2026), by its element type name, never by its text form.
    """
    import openvino

    if isinstance(compiled_precision, openvino.Type):
        name = compiled_precision.get_type_name()
    else:  # older releases returned the hint as a plain string
        name = str(compiled_precision).strip().lower()
    labels = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
    if name not in labels:
        raise ValueError(f"OpenVINO compiled the model in an unknown precision {compiled_precision!r}")
    return labels[name]


def compiled_precision(compiled: Any) -> str:
    """The precision a compiled OpenVINO model actually runs its float layers in."""
    return precision_name(compiled.get_property("INFERENCE_PRECISION_HINT"))


class OpenVinoRuntime(Runtime):
    def __init__(self, *, int8: bool = False, bf16: bool = False) -> None:
        self.int8, self.bf16 = int8, bf16
        self.precision = "int8" if int8 else "bf16" if bf16 else "fp32"
        self.name = "openvino" if self.precision == "fp32" else f"openvino-{self.precision}"
        self.export_format = "openvino"
        # bf16 is decided by the target CPU's units at compile time: timed on this host only.
        self.targets = ("host",) if bf16 else ("host", "ssh", "adb")
        self.needs_calibration = int8
        self.description = {
            "int8": "OpenVINO CPU, NNCF post-training static int8 calibrated on the task's images, latency hint",
            "bf16": "OpenVINO CPU, openvino.convert_model with BatchNorm folded, inference precision bf16, latency hint",
            "fp32": "OpenVINO CPU, openvino.convert_model with BatchNorm folded, fp32 (inference precision f32), latency hint",
        }[self.precision]

    def unavailable_reason(self) -> str | None:
        reason = export.format_unavailable("openvino", self.int8)
        if reason is None and self.bf16:
            reason = bf16_unavailable_reason()
        return reason

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
            # The float precision is asked for explicitly: on CPUs with bf16/fp16 units OpenVINO would
            # otherwise lower it on its own, and the fp32 row would not be fp32.
            hint = PRECISION_HINTS.get(self.precision, "f32")
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint}
            compiled = core.compile_model(ov_model, "CPU", config)
        real = compiled_precision(compiled)
        if self.bf16 and real != "bf16":
            raise UserError(f"--runtime {self.name}: OpenVINO compiled the model in {real}, not bf16, on this CPU")
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
            inference_precision=real,
        )
        return Prepared(forward, bind, static_batch=example.shape[0], details=details, keep_alive=(core, compiled))
