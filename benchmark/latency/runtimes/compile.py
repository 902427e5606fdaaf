"""torch.compile with the inductor backend, weights frozen (constant-folded), fp32."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable
from typing import Any

import torch

from benchmark.latency.runtimes.base import Prepared, Runtime, to_cpu


class CompileRuntime(Runtime):
    name = "compile"
    description = "torch.compile, inductor backend, weights frozen (constant-folded), fp32"

    def unavailable_reason(self) -> str | None:
        compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
        if not compiler:
            return "torch.compile's inductor backend needs a C++ compiler on PATH (none of c++, g++, clang++ found)"
        return None

    def version(self) -> str:
        return f"torch {torch.__version__} inductor"

    def prepare(self, model, example, *, threads=1, calibration=()):
        torch.set_num_threads(threads)
        model = copy.deepcopy(model).eval()
        # Freezing turns weights into constants so inductor can fold BatchNorm and prepack weights
        # (the recommended setting for CPU inference). Static shapes: one batch size, one graph.
        compiled = torch.compile(model, backend="inductor", dynamic=False, options={"freezing": True})
        with torch.no_grad():
            compiled(example)  # compiles now, so the cost lands in init, not in the first run

        def forward(x: torch.Tensor) -> Any:
            with torch.no_grad():
                return to_cpu(compiled(x))

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            def call() -> Any:
                with torch.no_grad():
                    return compiled(x)

            return call

        return Prepared(forward, bind, static_batch=example.shape[0], details={"torch_threads": torch.get_num_threads()})

