"""Side by side: the suite's CPU runtimes against the deployment tools used plainly, one process.

``python -m benchmark.latency.deploy_compare [--threads 2] [--rounds 5] [--runs 30]``

MobileNetV2 1.0 at 224, batch 1. The suite's runtimes run the suite's model (with the official
TFLite checkpoint's weights when ``BENCH_REALDATA`` or ``/work/shared/realdata`` holds them, else
random weights); the outside baselines are torchvision's ``mobilenet_v2`` through each tool's
plain path (``torch.onnx.export`` + ONNX Runtime, ``openvino.convert_model`` + the latency hint,
``litert_torch.convert`` + the LiteRT interpreter). Runtimes are timed in interleaved rounds so
that load from other processes hits all of them alike; p50 over all rounds. Prints the issue 12
acceptance ratios: fastest suite fp32 / fastest outside baseline (target <= 1.0) and fastest suite
int8 / fastest suite fp32 (target <= 0.6, with >= 95 % top-1 agreement with fp32 on real images).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn

from benchmark.latency import runtimes
from benchmark.latency.runtimes.base import fold_batchnorm
from benchmark.latency.runtimes.litert import prepare_tflite_file
from tasks.weights.tflite_import import import_tflite

SUITE = ("eager", "onnxruntime", "litert", "openvino", "onnxruntime-int8", "litert-int8", "openvino-int8")
OFFICIAL = "weights/mobilenet_v2_1.0_224_quant.tflite"


def realdata_root() -> Path | None:
    for candidate in (os.environ.get("BENCH_REALDATA"), "/work/shared/realdata"):
        if candidate and (Path(candidate) / OFFICIAL).is_file():
            return Path(candidate)
    return None


def load_images(root: Path, size: int = 224) -> torch.Tensor:
    """ImageNet validation images as the official checkpoint reads them: central 87.5 % crop,
    bilinear resize, ``pixel / 127.5 - 1``."""
    from PIL import Image

    images = []
    for path in sorted((root / "imagenet" / "val").glob("*/*.JPEG")):
        image = Image.open(path).convert("RGB")
        w, h = image.size
        box = (w * 0.0625, h * 0.0625, w * 0.9375, h * 0.9375)
        image = image.crop(box).resize((size, size), Image.BILINEAR)
        images.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1))
    return torch.stack(images)


# --------------------------------------------------------------------------------------------
# Outside baselines: each tool's documented plain path on torchvision's model
# --------------------------------------------------------------------------------------------
def plain_onnxruntime(model: nn.Module, example: torch.Tensor, threads: int, folder: Path) -> Callable[[], Any]:
    import onnxruntime

    path = folder / "tv.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    array = example.numpy()
    return lambda: session.run(None, {"input": array})


def plain_openvino(model: nn.Module, example: torch.Tensor, threads: int, folder: Path) -> Callable[[], Any]:
    import openvino

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ov_model = openvino.convert_model(model, example_input=example)
    compiled = openvino.Core().compile_model(ov_model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    tensor = openvino.Tensor(example.numpy())
    return lambda: request.infer({0: tensor})


def plain_litert(model: nn.Module, example: torch.Tensor, threads: int, folder: Path) -> Callable[[], Any]:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    path = folder / "tv.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(model, (example,)).export(str(path))
    return prepare_tflite_file(path, threads).bind(example)


BASELINES = {"plain onnxruntime": plain_onnxruntime, "plain openvino": plain_openvino, "plain litert": plain_litert}


# --------------------------------------------------------------------------------------------
def time_interleaved(calls: dict[str, Callable[[], Any]], rounds: int, runs: int) -> dict[str, float]:
    """p50 in ms of every call, timed round-robin: each round runs each call ``runs`` times."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(5):
            call()
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(runs):
                start = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def top1_agreement(forward: Callable[[torch.Tensor], Any], images: torch.Tensor, reference: torch.Tensor) -> float:
    predictions = torch.cat([forward(images[i : i + 1]).argmax(1) for i in range(images.shape[0])])
    return float((predictions == reference).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.latency.deploy_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30, help="timed calls per runtime per round")
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--agreement-images", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    root = realdata_root()
    if root is not None:
        model = import_tflite(root / OFFICIAL, task="classification")[0]
        images = load_images(root)
        step = images.shape[0] / args.calibration_images
        calibration_index = [int(step * i + step / 2) for i in range(args.calibration_images)]
        rest = [i for i in range(images.shape[0]) if i not in set(calibration_index)][: args.agreement_images]
        calibration = list(images[calibration_index].split(8))
        check = images[rest]
        source = f"official MobileNetV2 TFLite weights, {len(rest)} real ImageNet images ({root})"
    else:
        model = fold_batchnorm(torchvision.models.mobilenet_v2()).eval()
        calibration, check = [torch.rand(8, 3, 224, 224) * 2 - 1], None
        source = "random weights (no real data found: set BENCH_REALDATA); agreement not measured"
    example = (check[:1] if check is not None else calibration[0][:1]).contiguous()
    print(f"MobileNetV2 1.0 224, batch 1, {args.threads} threads; {source}")

    calls: dict[str, Callable[[], Any]] = {}
    forwards: dict[str, Callable[[torch.Tensor], Any]] = {}
    for name in SUITE:
        runtime = runtimes.get_runtime(name)
        reason = runtime.unavailable_reason()
        if reason:
            print(f"  skip {name}: {reason}")
            continue
        start = time.perf_counter()
        prepared = runtime.prepare(model, example, threads=args.threads, calibration=calibration)
        print(f"  prepared {name} in {time.perf_counter() - start:.1f} s")
        calls[name], forwards[name] = prepared.bind(example), prepared.forward
    tv_model = torchvision.models.mobilenet_v2().eval()
    with tempfile.TemporaryDirectory(prefix="deploy-compare-") as folder:
        for name, build in BASELINES.items():
            try:
                calls[name] = build(tv_model, example, args.threads, Path(folder))
            except Exception as error:  # noqa: BLE001 - a missing tool skips its baseline, said so
                print(f"  skip {name}: {type(error).__name__}: {error}")
        p50 = time_interleaved(calls, args.rounds, args.runs)

    agreement: dict[str, float] = {}
    if check is not None:
        with torch.no_grad():
            reference = torch.cat([model(check[i : i + 1]).argmax(1) for i in range(check.shape[0])])
        agreement = {name: top1_agreement(forward, check, reference) for name, forward in forwards.items()}

    outside = {n: v for n, v in p50.items() if n in BASELINES}
    suite_fp32 = {n: v for n, v in p50.items() if n in forwards and not n.endswith("-int8")}
    suite_int8 = {n: v for n, v in p50.items() if n.endswith("-int8")}
    best_outside = min(outside.values()) if outside else float("nan")
    best_fp32 = min(suite_fp32.values())
    print(f"\n{'runtime':<20} {'p50 ms':>8} {'/best plain':>11} {'/best fp32':>10} {'top-1 agree':>11}")
    for name, value in p50.items():
        agree = f"{100 * agreement[name]:.1f} %" if name in agreement else "-"
        print(f"{name:<20} {value:8.2f} {value / best_outside:11.2f} {value / best_fp32:10.2f} {agree:>11}")
    fastest_fp32 = min(suite_fp32, key=suite_fp32.get)
    print(f"\nfastest suite fp32: {fastest_fp32} {best_fp32:.2f} ms = {best_fp32 / best_outside:.2f}x the fastest plain tool "
          f"({min(outside, key=outside.get) if outside else '-'}); target <= 1.0")
    if suite_int8:
        fastest_int8 = min(suite_int8, key=suite_int8.get)
        agree = f", top-1 agreement with fp32 {100 * agreement[fastest_int8]:.1f} % (target >= 95 %)" if agreement else ""
        print(f"fastest suite int8: {fastest_int8} {suite_int8[fastest_int8]:.2f} ms = "
              f"{suite_int8[fastest_int8] / best_fp32:.2f}x the fastest suite fp32 (target <= 0.6){agree}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
