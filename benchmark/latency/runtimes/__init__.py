"""The runtimes ``bench latency --runtime`` accepts: an explicit registry, one module per backend
(base: what a runtime is; eager, compile, onnxruntime, cuda, executorch, litert, openvino; export:
the deployable files the runtimes time and ``bench export`` writes)."""

from __future__ import annotations

import torch

from backbones.errors import UserError
from benchmark.latency.runtimes.base import Prepared, Runtime
from benchmark.latency.runtimes.compile import CompileRuntime
from benchmark.latency.runtimes.cuda import CudaRuntime
from benchmark.latency.runtimes.eager import EagerBf16Runtime, EagerRuntime
from benchmark.latency.runtimes.executorch import ExecuTorchRuntime
from benchmark.latency.runtimes.litert import LiteRtRuntime
from benchmark.latency.runtimes.onnxruntime import OnnxRuntime
from benchmark.latency.runtimes.openvino import OpenVinoRuntime

RUNTIMES: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (
        EagerRuntime(),
        EagerRuntime(channels_last=True),
        EagerBf16Runtime(),
        CompileRuntime(),
        OnnxRuntime(),
        OnnxRuntime(int8=True),
        OnnxRuntime(cuda=True),
        CudaRuntime(),
        CudaRuntime(torch.float16),
        CudaRuntime(torch.bfloat16),
        ExecuTorchRuntime(),
        LiteRtRuntime(),
        LiteRtRuntime(int8=True),
        OpenVinoRuntime(),
        OpenVinoRuntime(bf16=True),
        OpenVinoRuntime(int8=True),
    )
}


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise UserError(f"--runtime: unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def device_runtimes() -> dict[str, Runtime]:
    """The runtimes a board or phone can time (``bench latency --device``): those with a deployable file."""
    return {name: runtime for name, runtime in RUNTIMES.items() if {"ssh", "adb"} & set(runtime.targets)}


def parse_runtimes(text: str) -> tuple[str, ...]:
    """``eager,onnxruntime`` -> names, checked against the registry, duplicates dropped."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError("--runtime: give at least one runtime name")
    for name in names:
        get_runtime(name)
    return tuple(dict.fromkeys(names))


__all__ = ["RUNTIMES", "Prepared", "Runtime", "device_runtimes", "get_runtime", "parse_runtimes"]
