"""ExecuTorch with the XNNPACK delegate, fp32 (what PyTorch models ship with on phones)."""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from benchmark.latency.runtimes.base import (
    FlatOutputs,
    Prepared,
    Runtime,
    fold_batchnorm,
    missing_package,
    output_spec,
)


class ExecuTorchRuntime(Runtime):
    name = "executorch"
    description = "ExecuTorch with the XNNPACK delegate, fp32 (what PyTorch models ship with on phones)"

    def unavailable_reason(self) -> str | None:
        reason = missing_package("executorch.runtime", "executorch torchao")
        if reason:
            return reason
        try:
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
            from executorch.exir import to_edge_transform_and_lower  # noqa: F401
        except ImportError as error:
            return f"executorch is installed but its XNNPACK exporter does not import ({error.msg}); pip install torchao"
        return None

    def version(self) -> str:
        try:
            return f"executorch {importlib.metadata.version('executorch')}"
        except importlib.metadata.PackageNotFoundError:
            return "executorch (unknown version)"

    def prepare(self, model, example, *, threads=1, calibration=()):
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime as EtRuntime

        spec = output_spec(model.eval(), example)
        flat = FlatOutputs(fold_batchnorm(model)).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.export.export(flat, (example,))
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
        _unsafe_reset_threadpool(threads)
        # The loaded program reads this buffer in place: it must stay alive as long as the method
        # (a temporary ``program.buffer`` is freed at once and the runtime then crashes).
        buffer = program.buffer
        loaded = EtRuntime.get().load_program(buffer)
        method = loaded.load_method("forward")

        def forward(x: torch.Tensor) -> Any:
            return pytree.tree_unflatten([t.clone() for t in method.execute([x.contiguous()])], spec)

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            x = x.contiguous()
            return lambda: method.execute([x])

        details = {"program_bytes": len(buffer), "delegate": "XnnpackPartitioner", "threadpool": threads}
        return Prepared(forward, bind, static_batch=example.shape[0], details=details, keep_alive=(buffer, loaded))

