"""Deployable files (ONNX, TFLite, OpenVINO IR; fp32 or static int8) and their JSON sidecar.

The latency runtimes time exactly these files: ``onnxruntime``, ``litert`` and ``openvino`` (and
their ``-int8`` twins) call ``export_model`` into a temporary folder and load what it wrote, so a file
from ``bench export`` is the one the leaderboard measured.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones.errors import UserError
from benchmark.latency.runtimes.base import FlatOutputs, fold_batchnorm, missing_package
from benchmark.latency.runtimes.int8_weights import prepare_int8_weights, register_grid_algorithm
from benchmark.latency.runtimes.onnxruntime import OnnxRuntime, export_onnx
from benchmark.runs.host import this_host
from benchmark.runs.records import git_commit, write_json_atomic

FORMATS = ("onnx", "tflite", "openvino")
# The file an export writes, by format (OpenVINO IR also writes a .bin next to the .xml).
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "openvino": ".xml"}
EXTRAS = {"tflite": "litert", "openvino": "openvino"}


def install_hint(extra: str) -> str:
    return f"pip install -e '.[{extra}]'"


def missing_extra(modules: Sequence[str], extra: str) -> str | None:
    """Why the packages of an optional extra are unusable (naming the extra to install), or None."""
    for module in modules:
        try:
            __import__(module)
        except ImportError as error:
            return f"needs the {module.split('.')[0]} package, which is not installed ({error.msg}); install it with: {install_hint(extra)}"
    return None


# An operator as converters name it: torch.export / FX targets (aten.add_.Tensor), TFLite and OpenVINO ops.
_OP = re.compile(r"\b(aten(?:::|\.)[A-Za-z_]\w*(?:\.\w+)?|tfl\.\w+|torch\.ops\.\w+\.\w+(?:\.\w+)?)")


def conversion_failure(error: BaseException) -> str:
    """A converter's exception as one line: its type, the first line of its message and the operator it
    names (where it names one anywhere in the message)."""
    text = str(error).strip()
    # LiteRT repeats its message once per attempt on one line ("failed to create XNNPACK runtimefailed to ...").
    first = re.sub(r"(.{10,}?)\1+", r"\1", text.splitlines()[0])[:200] if text else ""
    ops = list(dict.fromkeys(_OP.findall(text)))
    named = f"; op {', '.join(ops[:3])}" if ops and not any(op in first for op in ops[:3]) else ""
    return f"{type(error).__name__}: {first}{named}"


def rebatch(calibration: Sequence[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """Calibration images regrouped into batches of the static batch size the model was exported at
    (a short remainder is padded with the first images)."""
    images = [image for chunk in calibration for image in chunk]
    if not images:
        return []
    need = (-len(images)) % batch
    images += [images[i % len(images)] for i in range(need)]
    return [torch.stack(images[i : i + batch]) for i in range(0, len(images), batch)]


def _require_calibration(fmt: str, calibration: Sequence[torch.Tensor]) -> None:
    if not calibration:
        raise UserError(f"{fmt} int8: no calibration images (the task's validation data is empty)")


# --------------------------------------------------------------------------------------------
# TFLite (litert-torch, ai-edge-quantizer)
# --------------------------------------------------------------------------------------------
def export_tflite(
    model: nn.Module, example: torch.Tensor, path: Path, *, int8: bool = False, calibration: Sequence[torch.Tensor] = ()
) -> dict[str, Any]:
    """litert-torch's conversion (NCHW input; its layout pass moves the convs to NHWC and leaves one
    transpose at the input) of the BatchNorm-folded model; int8: ai-edge-quantizer's static recipe,
    int8 per-channel weights and int8 activations calibrated on ``calibration``."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    flat = FlatOutputs(fold_batchnorm(model)).eval()
    if int8:
        _require_calibration("tflite", calibration)
        prepare_int8_weights(flat, calibration)
    float_path = path.with_name(path.stem + ".fp32.tflite") if int8 else path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(flat, (example,)).export(str(float_path))
    details: dict[str, Any] = {"converter": "litert-torch", "tflite_bytes_fp32": float_path.stat().st_size}
    if int8:
        details["weight_preparation"] = "dead channels lifted for the int32 bias; bias corrected for weight rounding"
        details.update(quantize_tflite(float_path, path, rebatch(calibration, example.shape[0])))
        float_path.unlink()
    details["tflite_bytes"] = path.stat().st_size
    return details


def quantize_tflite(float_path: Path, out_path: Path, calibration: Sequence[torch.Tensor]) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    signatures = Interpreter(model_path=str(float_path)).get_signature_list()
    (signature, io), *_ = signatures.items()
    (input_name,) = io["inputs"]
    # Weights of conv / depthwise / FC by the suite's rule (a checkpoint's own grid where the values sit
    # on one, else min/max), the rest of the static recipe as it is.
    static = recipe.static_wi8_ai8()
    algorithm = register_grid_algorithm()
    weighted = [dict(static[0], operation=op, algorithm_key=algorithm) for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    quant = quantizer.Quantizer(str(float_path), static + weighted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranges = global_ranges(quant, signature, input_name, calibration)
        quant.quantize(ranges, enable_progress_report=False).export_model(str(out_path), overwrite=True)
    return {
        "quantization": "ai-edge-quantizer static_wi8_ai8: per-channel int8 weights (a checkpoint's own grid where "
        "they sit on one), int8 activations, min/max over all calibration images",
        "calibration_batches": len(calibration),
    }


def global_ranges(quant: Any, signature: str, input_name: str, calibration: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Each tensor's min and max over all calibration images. ai-edge-quantizer's own calibration keeps a
    moving average (0.95) of per-image ranges, which clips every image whose activations reach further
    than the average one: one image per call, merged here."""
    import numpy as np

    ranges: dict[str, Any] = {}
    for batch in calibration:
        for name, qsv in quant.calibrate({signature: [{input_name: batch.numpy()}]}, num_threads=1).items():
            if name in ranges and qsv:
                ranges[name] = {"min": np.minimum(ranges[name]["min"], qsv["min"]), "max": np.maximum(ranges[name]["max"], qsv["max"])}
            elif qsv:
                ranges[name] = dict(qsv)
    return ranges


# --------------------------------------------------------------------------------------------
# OpenVINO IR (openvino.convert_model, NNCF)
# --------------------------------------------------------------------------------------------
def convert_openvino(
    model: nn.Module, example: torch.Tensor, *, int8: bool = False, calibration: Sequence[torch.Tensor] = ()
) -> tuple[Any, dict[str, Any]]:
    """An in-memory ``openvino.Model`` at the example's static shape; int8: NNCF post-training
    quantization (per-channel int8 weights, int8 activations) calibrated on ``calibration``."""
    import openvino

    flat = FlatOutputs(fold_batchnorm(model)).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        ov_model = openvino.convert_model(flat, example_input=(example,), input=[tuple(example.shape)])
    details: dict[str, Any] = {"converter": f"openvino.convert_model {openvino.__version__}"}
    if int8:
        import nncf

        _require_calibration("openvino", calibration)
        batches = rebatch(calibration, example.shape[0])
        overflow_fix = nncf_overflow_fix()
        # NNCF draws its progress bars on stdout, which would corrupt `bench latency --json`.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            ov_model = nncf.quantize(
                ov_model,
                nncf.Dataset(batches, lambda batch: batch.numpy()),
                subset_size=sum(b.shape[0] for b in batches),
                advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=overflow_fix),
            )
        details.update(quantization=f"nncf {nncf.__version__} quantize (default preset: symmetric int8)",
                       calibration_batches=len(batches), overflow_fix=overflow_fix.value)
    return ov_model, details


def nncf_overflow_fix():
    """NNCF's overflow fix for this CPU: on x86 without VNNI the u8 x s8 kernels sum pairs of
    products in saturating 16 bits, so every layer's weights are kept within 7 bits (``enable``);
    with VNNI/AMX/dotprod the sums are 32-bit and NNCF's default (first layer only) loses nothing."""
    from nncf.quantization.advanced_parameters import OverflowFix

    return OverflowFix.FIRST_LAYER if this_host().int8_dot_product else OverflowFix.ENABLE


def export_openvino(
    model: nn.Module, example: torch.Tensor, path: Path, *, int8: bool = False, calibration: Sequence[torch.Tensor] = ()
) -> dict[str, Any]:
    import openvino

    ov_model, details = convert_openvino(model, example, int8=int8, calibration=calibration)
    openvino.save_model(ov_model, str(path), compress_to_fp16=False)
    details["ir_bytes"] = path.stat().st_size + path.with_suffix(".bin").stat().st_size
    return details


# --------------------------------------------------------------------------------------------
# Dispatch and the sidecar
# --------------------------------------------------------------------------------------------
def export_onnx_file(
    model: nn.Module, example: torch.Tensor, path: Path, *, int8: bool = False, calibration: Sequence[torch.Tensor] = ()
) -> dict[str, Any]:
    if not int8:
        return export_onnx(model, example, path)
    _require_calibration("onnx", calibration)
    float_path = path.with_name(path.stem + ".fp32.onnx")
    details = export_onnx(model, example, float_path)
    details.update(OnnxRuntime(int8=True).quantize(float_path, path, calibration))
    for leftover in (float_path, float_path.with_name("model.pre.onnx")):
        leftover.unlink(missing_ok=True)
    return details


WRITERS = {"onnx": export_onnx_file, "tflite": export_tflite, "openvino": export_openvino}
MODULES = {"onnx": ("onnx", "onnxruntime"), "tflite": ("litert_torch", "ai_edge_litert.interpreter"),
           "openvino": ("openvino",)}  # fmt: skip
INT8_MODULES = {"tflite": ("ai_edge_quantizer",), "openvino": ("nncf",), "onnx": ()}


def format_unavailable(fmt: str, int8: bool = False) -> str | None:
    modules = MODULES[fmt] + (INT8_MODULES[fmt] if int8 else ())
    if fmt == "onnx":
        return missing_package("onnxruntime", "onnxruntime") or missing_package("onnx", "onnx")
    return missing_extra(modules, EXTRAS[fmt])


def export_model(
    model: nn.Module,
    example: torch.Tensor,
    fmt: str,
    *,
    int8: bool = False,
    calibration: Sequence[torch.Tensor] = (),
    out_path: str | os.PathLike,
) -> dict[str, Any]:
    """Write ``model`` (eval mode, fixed to ``example``'s shape) as ``fmt`` to ``out_path``; returns
    what the export did (converter, quantization, sizes)."""
    if fmt not in WRITERS:
        raise UserError(f"--format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    reason = format_unavailable(fmt, int8)
    if reason:
        raise UserError(f"--format {fmt}: {reason}")
    out_path = Path(out_path)
    if out_path.suffix != SUFFIXES[fmt]:
        raise UserError(f"{out_path}: a {fmt} export needs the suffix {SUFFIXES[fmt]}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    details = WRITERS[fmt](model.eval(), example, out_path, int8=int8, calibration=calibration)
    return {"format": fmt, "precision": "int8" if int8 else "fp32", "path": str(out_path), **details}


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def write_sidecar(
    model_path: str | os.PathLike,
    *,
    example: torch.Tensor,
    fmt: str,
    int8: bool,
    mean: Sequence[float],
    std: Sequence[float],
    labels: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """``model.json`` next to the file: what an app needs to feed it (input shape, layout, the
    normalisation ``(pixel / 255 - mean) / std``) and read it (label names), plus provenance."""
    sidecar = {
        "file": Path(model_path).name,
        "format": fmt,
        "precision": "int8" if int8 else "fp32",
        "input": {
            "shape": list(example.shape),
            "layout": "NCHW",
            "dtype": "float32",
            "size": list(example.shape[-2:]),
            "normalization": {"mean": list(mean), "std": list(std), "scale": "pixel / 255"},
        },
        "labels": list(labels) if labels is not None else None,
        "commit": git_commit(),
        **(extra or {}),
    }
    return write_json_atomic(sidecar_path(model_path), sidecar)
