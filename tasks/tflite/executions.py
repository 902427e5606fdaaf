"""How ``bench eval --runtime`` runs an official file: the suite's float import (eager), or the file's
own integers as TFLite's builtin kernels or as XNNPACK (LiteRT's default interpreter) compute them
(``tasks.tflite.integer_model``). One table for the command's choices and the leaderboard's columns.

These are evaluation arithmetics, not deployment runtimes: the timed runtimes (``bench latency
--runtime``) are ``benchmark.latency.runtimes``. Torch-free: the command line reads it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Execution:
    name: str  # the --runtime value, and the evaluation record's "runtime"
    arithmetic: str | None  # IntegerTFLiteModel's arithmetic; None: the eager PyTorch model in fp32
    title: str  # the integer-execution table's column


EXECUTIONS: dict[str, Execution] = {e.name: e for e in (
    Execution("eager", None, "float import (eager fp32)"),
    Execution("tflite-int8", "tflite", "tflite-int8 (builtin kernels)"),
    Execution("xnnpack-int8", "xnnpack", "xnnpack-int8 (LiteRT default)"),
)}  # fmt: skip
INTEGER_EXECUTIONS = tuple(name for name, e in EXECUTIONS.items() if e.arithmetic)
