"""PyTorch eager, fp32, NCHW (the accuracy gate's reference) or channels_last; bf16 on CPUs with native bf16."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from benchmark.latency.runtimes.base import Prepared, Runtime, to_cpu
from benchmark.latency.runtimes.cpu_bf16 import bf16_unavailable_reason


class EagerRuntime(Runtime):
    def __init__(self, *, channels_last: bool = False) -> None:
        self.channels_last = channels_last
        self.name = "eager-cl" if channels_last else "eager"
        self.layout = "NHWC (channels_last)" if channels_last else "NCHW"
        self.is_reference = not channels_last
        self.description = (
            "PyTorch eager, fp32, channels_last memory format" if channels_last else "PyTorch eager, fp32, NCHW (the reference)"
        )
        self.format = torch.channels_last if channels_last else torch.contiguous_format

    def version(self) -> str:
        return f"torch {torch.__version__}"

    def prepare(self, model, example, *, threads=1, calibration=()):
        torch.set_num_threads(threads)
        if self.channels_last:
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        model.eval()

        def forward(x: torch.Tensor) -> Any:
            with torch.inference_mode():
                return to_cpu(model(x.contiguous(memory_format=self.format)))

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            x = x.contiguous(memory_format=self.format)

            def call() -> Any:
                with torch.inference_mode():
                    return model(x)

            return call

        return Prepared(forward, bind, details={"torch_threads": torch.get_num_threads()})



class EagerBf16Runtime(Runtime):
    """bf16 weights and activations, channels_last (oneDNN's bf16 convolutions on AVX-512 BF16 / AMX)."""

    name = "eager-bf16"
    precision = "bf16"
    layout = "NHWC (channels_last)"
    description = "PyTorch eager, bf16 weights and activations, channels_last (CPUs with native bf16)"

    def unavailable_reason(self) -> str | None:
        return bf16_unavailable_reason()

    def version(self) -> str:
        return f"torch {torch.__version__}"

    def prepare(self, model, example, *, threads=1, calibration=()):
        torch.set_num_threads(threads)
        model = copy.deepcopy(model).eval().to(torch.bfloat16, memory_format=torch.channels_last)

        def cast(x: torch.Tensor) -> torch.Tensor:
            return x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)

        def forward(x: torch.Tensor) -> Any:
            with torch.inference_mode():
                return to_cpu(model(cast(x)))

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            x = cast(x)

            def call() -> Any:
                with torch.inference_mode():
                    return model(x)

            return call

        return Prepared(forward, bind, details={"torch_threads": torch.get_num_threads(), "dtype": "bfloat16"})
