"""PyTorch eager on a CUDA GPU (fp32, fp16, bf16), timed with CUDA events."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from benchmark.latency.runtimes.base import Prepared, Runtime, to_cpu


class CudaRuntime(Runtime):
    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        label = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
        self.name = "cuda" if dtype == torch.float32 else f"cuda-{label}"
        self.precision = label
        self.description = f"PyTorch eager on the GPU, {label} weights and activations, timed with CUDA events"

    def unavailable_reason(self) -> str | None:
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to torch (torch.cuda.is_available() is False)"
        if self.dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(0)} does not support bf16"
        return None

    def version(self) -> str:
        return f"torch {torch.__version__} CUDA {torch.version.cuda}"

    def prepare(self, model, example, *, threads=1, calibration=()):
        torch.set_num_threads(threads)
        model = copy.deepcopy(model).eval().to("cuda", self.dtype)

        def forward(x: torch.Tensor) -> Any:
            with torch.inference_mode():
                return to_cpu(model(x.to("cuda", self.dtype)))

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            x = x.to("cuda", self.dtype)

            def call() -> Any:
                with torch.inference_mode():
                    return model(x)

            return call

        def timer(call: Callable[[], Any]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            call()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0

        return Prepared(forward, bind, device="cuda", timer=timer, details={"gpu": torch.cuda.get_device_name(0)})

