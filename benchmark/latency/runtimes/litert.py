"""LiteRT (the TFLite interpreter, XNNPACK delegate): the suite's model converted with litert-torch,
fp32 or static int8, and any given ``.tflite`` file (the official uint8 checkpoints).

Registered in ``benchmark.latency.runtimes.RUNTIMES``.
"""

from __future__ import annotations

import importlib.metadata
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils import _pytree as pytree

from backbones.errors import UserError
from benchmark.latency.runtimes import export
from benchmark.latency.runtimes.base import Prepared, Runtime, output_spec


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class LiteRtRuntime(Runtime):
    layout = "NCHW input (NHWC inside, one transpose)"

    def __init__(self, *, int8: bool = False) -> None:
        self.int8 = int8
        self.name = "litert-int8" if int8 else "litert"
        self.precision = "int8" if int8 else "fp32"
        self.export_format, self.targets = "tflite", ("host", "ssh", "adb")
        self.needs_calibration = int8
        self.description = (
            "LiteRT interpreter (XNNPACK), litert-torch conversion, static int8 (ai-edge-quantizer: per-channel "
            "int8 weights, int8 activations) calibrated on the task's images"
            if int8
            else "LiteRT interpreter (XNNPACK), litert-torch conversion with BatchNorm folded, fp32"
        )

    def unavailable_reason(self) -> str | None:
        return export.format_unavailable("tflite", self.int8)

    def version(self) -> str:
        return f"ai-edge-litert {_version('ai-edge-litert')}, litert-torch {_version('litert-torch')}" + (
            f", ai-edge-quantizer {_version('ai-edge-quantizer')}" if self.int8 else ""
        )

    def prepare(self, model, example, *, threads=1, calibration=()):
        spec = output_spec(model.eval(), example)
        with tempfile.TemporaryDirectory(prefix="bench-litert-") as folder:
            path = Path(folder) / "model.tflite"
            details = export.export_model(model, example, "tflite", int8=self.int8, calibration=calibration, out_path=path)
            prepared = prepare_tflite_file(path, threads, spec=spec)
        prepared.details.update({k: v for k, v in details.items() if k != "path"})
        return prepared


def _output_order(interpreter: Any) -> list[int]:
    """Output tensor indices in the model's order: litert-torch names them ``output_0``, ``output_1``,
    ... in its signature; files without a signature keep the interpreter's order."""
    signatures = interpreter._get_full_signature_list()
    if signatures:
        outputs = next(iter(signatures.values()))["outputs"]
        number = lambda name: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]  # noqa: E731
        return [outputs[name] for name in sorted(outputs, key=number)]
    return [detail["index"] for detail in interpreter.get_output_details()]


def dequantizing_reader(interpreter: Any, details: list[dict[str, Any]]) -> Callable[[int], torch.Tensor]:
    """``read(tensor index)``: the interpreter's tensor as float32, dequantized where it is 8-bit."""
    quantization = {d["index"]: d["quantization"] for d in details}

    def read(index: int) -> torch.Tensor:
        value = interpreter.get_tensor(index)
        scale, zero = quantization[index]
        if value.dtype.kind in "iu" and scale:
            return torch.from_numpy((value.astype(np.float32) - zero) * scale)
        return torch.from_numpy(value.astype(np.float32, copy=True))

    return read


def input_converter(
    detail: dict[str, Any], path: Path, pixels: tuple[tuple[float, ...], tuple[float, ...]] | None = None
) -> Callable[[torch.Tensor], np.ndarray]:
    """The suite's NCHW float batch -> the array the file's input (``detail``) takes (see
    ``prepare_tflite_file`` for the ranges)."""
    shape = tuple(int(s) for s in detail["shape"])
    nhwc = len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)
    in_dtype = np.dtype(detail["dtype"])
    in_scale, in_zero = detail["quantization"]

    def to_input(x: torch.Tensor) -> np.ndarray:
        x = x.detach().cpu().float()
        if nhwc:
            x = x.permute(0, 2, 3, 1)
        if tuple(x.shape) != shape:
            raise UserError(f"{path}: the model takes input shape {list(shape)}, got {list(x.shape)}")
        array = x.contiguous().numpy()
        if pixels is not None and in_dtype == np.uint8:
            mean, std = (np.asarray(v, np.float32) for v in pixels)
            return np.ascontiguousarray(np.clip(np.round((array * std + mean) * 255.0), 0, 255).astype(np.uint8))
        if in_dtype.kind in "iu" and in_scale:
            return quantize_input(array, in_scale, in_zero, in_dtype)
        return np.ascontiguousarray(array.astype(in_dtype))

    return to_input


def quantize_input(array: np.ndarray, scale: float, zero_point: int, dtype: Any) -> np.ndarray:
    """A float batch in an integer input's grid as TFLite's QUANTIZE kernel does it: float32 ``x /
    scale``, rounded half away from zero, plus the zero point, clamped.

    Not numpy's ``round`` (half to even): with the inception preset every pixel lands on a half step
    of a 1/127.5 grid, where the two roundings disagree (on 40 of the 256 pixel values). The device timer
    (``benchmark/devices/device_timer.py``) carries a copy, held equal to this one by a test."""
    limits = np.iinfo(dtype)
    steps = (array.astype(np.float32) / np.float32(scale)).astype(np.float64)
    rounded = np.sign(steps) * np.floor(np.abs(steps) + 0.5)
    return np.ascontiguousarray(np.clip(rounded + zero_point, limits.min, limits.max).astype(dtype))


def prepare_tflite_file(
    path: str | Path,
    threads: int = 1,
    *,
    spec: pytree.TreeSpec | None = None,
    pixels: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Prepared:
    """A ``.tflite`` file as a timed callable on the suite's NCHW float batch.

    The float input is taken to be in the file's float domain; a quantized input (the official
    uint8 checkpoints) is quantized with the file's scale and zero point, an NHWC input gets the
    batch transposed, and quantized outputs are dequantized. ``pixels`` (the preset's mean and std
    on the 0..1 scale): the batch is the suite's normalised image, and a uint8 input gets the
    rounded 0..255 pixels back (the file's own range, as its publisher feeds it). Outputs:
    ``spec``'s structure, else one tensor or a tuple. ``bind`` times copying the prepared input in
    plus ``invoke``.
    """
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    try:
        content = path.read_bytes()
        interpreter = Interpreter(model_content=content, num_threads=threads)
    except (OSError, ValueError, RuntimeError) as error:
        raise UserError(f"{path}: cannot load as a TFLite model ({error})") from None
    interpreter.allocate_tensors()
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise UserError(f"{path}: the model has {len(inputs)} inputs; only single-image models can be timed")
    (detail,) = inputs
    shape = tuple(int(s) for s in detail["shape"])
    to_input = input_converter(detail, path, pixels)
    order = _output_order(interpreter)
    read = dequantizing_reader(interpreter, interpreter.get_output_details())

    def forward(x: torch.Tensor) -> Any:
        interpreter.set_tensor(detail["index"], to_input(x))
        interpreter.invoke()
        outputs = [read(index) for index in order]
        if spec is not None:
            return pytree.tree_unflatten(outputs, spec)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def bind(x: torch.Tensor) -> Callable[[], Any]:
        array = to_input(x)

        def call() -> None:
            interpreter.set_tensor(detail["index"], array)
            interpreter.invoke()

        return call

    return Prepared(forward, bind, static_batch=shape[0], details=file_details(interpreter, path, detail, threads),
                    keep_alive=(content, interpreter))


def file_details(interpreter: Any, path: Path, detail: dict[str, Any], threads: int) -> dict[str, Any]:
    """What a latency record says of a timed ``.tflite``: its input tensor and how much LiteRT delegated."""
    scale, zero_point = detail["quantization"]
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    return {
        "tflite_file": path.name,
        "input": {"shape": [int(s) for s in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
                  "scale": float(scale), "zero_point": int(zero_point)},
        "delegate_nodes": ops.count("DELEGATE"),
        "num_threads": threads,
    }
