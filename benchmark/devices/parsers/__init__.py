"""Parsers for the device tools' own outputs, one module per tool, all in microseconds.

Each takes the tool's log as it reaches us (terminal, ``adb shell``, ``adb logcat`` in any format)
and returns a ``ToolResult`` of the last completed run, or raises ``ToolOutputError`` with the
tool's own error in one line.
"""

from benchmark.devices.parsers.benchmark_app import parse_benchmark_app
from benchmark.devices.parsers.benchmark_model import parse_benchmark_model
from benchmark.devices.parsers.common import Delegation, ToolOutputError, ToolResult, clean_lines, first_error
from benchmark.devices.parsers.onnxruntime_perf_test import parse_onnxruntime_perf_test
from benchmark.devices.parsers.python_tools import parse_device_timer, parse_litert_benchmark

PARSERS = {
    "benchmark_model": parse_benchmark_model,
    "benchmark_app": parse_benchmark_app,
    "onnxruntime_perf_test": parse_onnxruntime_perf_test,
    "bench-device-timer": parse_device_timer,
    "litert-benchmark": parse_litert_benchmark,
}

__all__ = [
    "PARSERS", "Delegation", "ToolOutputError", "ToolResult", "clean_lines", "first_error", "parse_benchmark_app",
    "parse_benchmark_model", "parse_device_timer", "parse_litert_benchmark", "parse_onnxruntime_perf_test",
]  # fmt: skip
