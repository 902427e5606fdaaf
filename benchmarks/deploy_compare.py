"""Side by side: the suite's CPU runtimes against the deployment tools used plainly, one process.

``python -m benchmarks.deploy_compare [--subject mnv2-224,ssdlite-mnv2-320,deeplabv3-mnv2-513]
[--threads 2] [--rounds 3] [--round-seconds 1]``

The issue 12 acceptance, for each subject model at batch 1: the suite's runtimes run the suite's model
(with the official TFLite checkpoint's weights and real images when ``BENCH_REALDATA`` or
``/work/shared/realdata`` holds them, else random weights and the embedded generated images); the
outside baselines run the same model through each tool's documented plain path (``torch.onnx.export``
+ ONNX Runtime, ``openvino.convert_model`` + the latency hint, ``litert_torch.convert`` + the LiteRT
interpreter). Runtimes are timed in interleaved rounds so that load from other processes hits all of
them alike; p50 over all rounds. Every row states the precision it really ran in (a plain tool's is
read back from the tool: plain OpenVINO picks bf16 by itself on CPUs with AVX-512 BF16 / AMX), and
ratios compare like with like. Prints, per subject: fastest suite fp32 / fastest plain fp32 tool (target
<= 1.0), bf16 rows apart (suite bf16 runtimes where the CPU has native bf16) and fastest suite int8 / fastest suite fp32 (target <= 0.6), with each runtime's agreement
with eager fp32 (top-1 for classification, pixels for segmentation) on real images the int8
calibration did not see. SSDLite-MNv2-320 has no trained weights offline: timed with random weights,
agreement not judged (the detection int8 gate is ``bench latency --task detection --weights`` with
the official SSD file).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones.errors import UserError
from benchmark.latency import runtimes
from benchmark.latency.gate import OutputComparison
from benchmark.latency.inputs import load_task_images
from benchmark.latency.runtimes.base import FlatOutputs
from benchmark.latency.runtimes.litert import prepare_tflite_file
from benchmark.latency.runtimes.openvino import compiled_precision
from benchmark.runs.config import resolve_config
from benchmark.runs.host import this_host
from tasks import get_task
from tasks.factory import build_model

SUITE = (
    "eager", "onnxruntime", "litert", "openvino", "eager-bf16", "openvino-bf16",
    "onnxruntime-int8", "litert-int8", "openvino-int8",
)  # fmt: skip


@dataclass(frozen=True)
class Subject:
    label: str
    task: str
    config: dict[str, Any]
    # Under the real-data root: the official checkpoint (None: random weights) and the image folder.
    weights: str | None
    data: str
    calibration_images: int = 32
    agreement_images: int = 200
    # Output dimension holding the classes, for agreement; None: not judged (untrained model).
    class_dim: int | None = 1


SUBJECTS = {
    "mnv2-224": Subject(
        "MobileNetV2 1.0, 224", "classification", {"backbone": "mnv2", "resolution": 224},
        "weights/mobilenet_v2_1.0_224_quant.tflite", "imagenet",
    ),
    "ssdlite-mnv2-320": Subject(
        "SSDLite MobileNetV2 1.0, 320", "detection", {"backbone": "mnv2", "resolution": 320},
        None, "coco", class_dim=None,
    ),
    "deeplabv3-mnv2-513": Subject(
        "Mobile DeepLabv3 MobileNetV2 1.0 (OS 16), 513", "segmentation", {"backbone": "mnv2", "resolution": 513},
        "weights/deeplabv3_mnv2_pascal_quant.tflite", "voc", calibration_images=16,
    ),
}  # fmt: skip


def realdata_root() -> Path | None:
    for candidate in (os.environ.get("BENCH_REALDATA"), "/work/shared/realdata"):
        if candidate and (Path(candidate) / SUBJECTS["mnv2-224"].weights).is_file():
            return Path(candidate)
    return None


@dataclass
class SubjectInputs:
    model: nn.Module
    example: torch.Tensor
    calibration: list[torch.Tensor]
    check: torch.Tensor | None
    source: str


def prepare_subject(subject: Subject, root: Path | None) -> SubjectInputs:
    """The subject's model, its example input, calibration batches and held-out agreement images
    (the same evenly spread calibration choice as ``bench latency``)."""
    task = get_task(subject.task)
    given = dict(subject.config)
    if root is not None:
        given["data"] = str(root / subject.data)
        if subject.weights:
            given["weights"] = str(root / subject.weights)
    cfg = resolve_config(task, given, shipped_recipes=False)
    model = build_model(task, cfg).eval()
    images = load_task_images(task, cfg, 1)
    total = len(images)
    if total == 0:
        return SubjectInputs(model, images.example, [images.example], None, images.description)
    count = min(subject.calibration_images, total)
    step = total / count
    chosen = [int(step * i + step / 2) for i in range(count)]
    calibration = [images.images(chosen[i : i + 8]) for i in range(0, count, 8)]
    rest = [i for i in range(total) if i not in set(chosen)][: subject.agreement_images]
    check = images.images(rest) if rest and root is not None and subject.class_dim is not None else None
    weights = f"official weights {subject.weights}" if root is not None and subject.weights else "random weights"
    data = f"{len(rest)} held-out real images of {root / subject.data}" if check is not None else "agreement not judged"
    return SubjectInputs(model, images.example, calibration, check, f"{weights}; {count} calibration images; {data}")


# --------------------------------------------------------------------------------------------
# Outside baselines: each tool's documented plain path on the same model (no folding, no options)
# --------------------------------------------------------------------------------------------
# Each returns the timed call and the precision the tool really runs in.
Baseline = tuple[Callable[[], Any], str]


def plain_onnxruntime(model: nn.Module, example: torch.Tensor, threads: int, folder: Path) -> Baseline:
    import onnxruntime

    path = folder / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    array = example.numpy()
    return (lambda: session.run(None, {"input": array})), "fp32"  # CPUExecutionProvider keeps float32


def plain_openvino(model: nn.Module, example: torch.Tensor, threads: int, folder: Path) -> Baseline:
    import openvino

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ov_model = openvino.convert_model(model, example_input=example)
    compiled = openvino.Core().compile_model(ov_model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    tensor = openvino.Tensor(example.numpy())
    return (lambda: request.infer({0: tensor})), compiled_precision(compiled)


def plain_litert(model: nn.Module, example: torch.Tensor, threads: int, folder: Path) -> Baseline:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    path = folder / "plain.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(model, (example,)).export(str(path))
    return prepare_tflite_file(path, threads).bind(example), "fp32"  # a float32 .tflite, no delegate


BASELINES = {"plain onnxruntime": plain_onnxruntime, "plain openvino": plain_openvino, "plain litert": plain_litert}


# --------------------------------------------------------------------------------------------
def time_interleaved(calls: dict[str, Callable[[], Any]], rounds: int, round_seconds: float) -> dict[str, float]:
    """p50 in ms of every call, timed round-robin: each round runs each call for ``round_seconds``
    (at least 3 calls), after 3 warm-up calls each."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(3):
            call()
    for _ in range(rounds):
        for name, call in calls.items():
            began = time.perf_counter()
            while len(samples[name]) < 3 or time.perf_counter() - began < round_seconds:
                start = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def agreement(forward: Callable[[torch.Tensor], Any], model: nn.Module, images: torch.Tensor, class_dim: int) -> float:
    """Percent of eager fp32's top classes (per image or per pixel) the runtime also ranks first."""
    comparison = OutputComparison(class_dim)
    with torch.no_grad():
        for i in range(images.shape[0]):
            x = images[i : i + 1]
            comparison.update(model(x), forward(x))
    return comparison.agreement()


@dataclass(frozen=True)
class PrecisionGroups:
    """p50 (ms) of the suite's and the plain tools' rows, by the precision each really ran in."""

    suite: dict[str, dict[str, float]]
    plain: dict[str, dict[str, float]]

    def fastest(self, side: str, precision: str) -> tuple[str, float] | None:
        rows = getattr(self, side).get(precision, {})
        return min(rows.items(), key=lambda item: item[1]) if rows else None


def group_by_precision(p50: dict[str, float], precisions: dict[str, str], plain: set[str]) -> PrecisionGroups:
    """Rows split into suite / plain, then by precision, so that a ratio never mixes precisions."""
    suite_groups: dict[str, dict[str, float]] = {}
    plain_groups: dict[str, dict[str, float]] = {}
    for name, value in p50.items():
        groups = plain_groups if name in plain else suite_groups
        groups.setdefault(precisions[name], {})[name] = value
    return PrecisionGroups(suite_groups, plain_groups)


@dataclass
class Acceptance:
    label: str
    fp32_vs_plain: float
    int8_vs_fp32: float | None
    int8_agreement: float | None


def prepare_suite(data: Any, example: torch.Tensor, threads: int) -> tuple[dict[str, Callable[[], Any]],
                                                                           dict[str, Callable[[torch.Tensor], Any]],
                                                                           dict[str, str]]:
    """Each of the suite's runtimes that can run here, prepared: its timed call, its forward (for the
    agreement check) and the precision it really ran in."""
    calls: dict[str, Callable[[], Any]] = {}
    forwards: dict[str, Callable[[torch.Tensor], Any]] = {}
    precisions: dict[str, str] = {}
    for name in SUITE:
        runtime = runtimes.get_runtime(name)
        reason = runtime.unavailable_reason()
        if reason:
            print(f"  skip {name}: {reason}")
            continue
        start = time.perf_counter()
        prepared = runtime.prepare(data.model, example, threads=threads, calibration=data.calibration)
        print(f"  prepared {name} in {time.perf_counter() - start:.1f} s", flush=True)
        calls[name], forwards[name] = prepared.bind(example), prepared.forward
        # OpenVINO's rows state what it compiled to; the others run in their declared precision.
        real = prepared.details.get("inference_precision")
        precisions[name] = real if real and runtime.precision != "int8" else runtime.precision
    return calls, forwards, precisions


def compare(subject: Subject, root: Path | None, threads: int, rounds: int, round_seconds: float) -> Acceptance:
    data = prepare_subject(subject, root)
    example = data.example.contiguous()
    print(f"\n== {subject.label}, batch 1, {threads} threads; {data.source}")
    calls, forwards, precisions = prepare_suite(data, example, threads)
    with tempfile.TemporaryDirectory(prefix="deploy-compare-") as folder:
        plain_model = FlatOutputs(data.model).eval()
        for name, build in BASELINES.items():
            try:
                calls[name], precisions[name] = build(plain_model, example, threads, Path(folder))
            except Exception as error:  # noqa: BLE001 - a missing tool skips its baseline, said so
                print(f"  skip {name}: {type(error).__name__}: {error}")
        p50 = time_interleaved(calls, rounds, round_seconds)

    agree: dict[str, float] = {}
    if data.check is not None and subject.class_dim is not None:
        agree = {n: agreement(f, data.model, data.check, subject.class_dim) for n, f in forwards.items() if n != "eager"}
    groups = group_by_precision(p50, precisions, set(BASELINES))
    plain_fp32 = groups.fastest("plain", "fp32")
    suite_fp32 = groups.fastest("suite", "fp32")
    if suite_fp32 is None:
        raise UserError(f"{subject.label}: no suite fp32 runtime could run here")
    best_outside = plain_fp32[1] if plain_fp32 else float("nan")
    best_fp32 = suite_fp32[1]
    print(f"\n{'runtime':<20} {'precision':>9} {'p50 ms':>8} {'/plain fp32':>11} {'/best fp32':>10} {'agreement':>10}")
    for name, value in p50.items():
        shown = f"{agree[name]:.1f} %" if name in agree else "-"
        print(f"{name:<20} {precisions[name]:>9} {value:8.2f} {value / best_outside:11.2f} {value / best_fp32:10.2f} "
              f"{shown:>10}")
    print(f"fastest suite fp32: {suite_fp32[0]} {best_fp32:.2f} ms = {best_fp32 / best_outside:.2f}x the fastest plain "
          f"fp32 tool ({plain_fp32[0] if plain_fp32 else '-'}); target <= 1.0")
    result = Acceptance(subject.label, best_fp32 / best_outside, None, None)
    plain_bf16, suite_bf16 = groups.fastest("plain", "bf16"), groups.fastest("suite", "bf16")
    if plain_bf16 or suite_bf16:
        suite_text = f"{suite_bf16[0]} {suite_bf16[1]:.2f} ms" if suite_bf16 else "no suite bf16 runtime ran"
        plain_text = f"{plain_bf16[0]} {plain_bf16[1]:.2f} ms" if plain_bf16 else "no plain tool ran bf16"
        ratio = f" = {suite_bf16[1] / plain_bf16[1]:.2f}x" if suite_bf16 and plain_bf16 else ""
        print(f"bf16, apart from fp32: fastest suite {suite_text}{ratio} the fastest plain bf16 ({plain_text})")
    suite_int8 = groups.suite.get("int8", {})
    if suite_int8:
        fastest_int8 = min(suite_int8, key=suite_int8.get)
        result.int8_vs_fp32, result.int8_agreement = suite_int8[fastest_int8] / best_fp32, agree.get(fastest_int8)
        shown = f", agreement with eager fp32 {agree[fastest_int8]:.1f} %" if fastest_int8 in agree else ", agreement not judged"
        print(f"fastest suite int8: {fastest_int8} {suite_int8[fastest_int8]:.2f} ms = {result.int8_vs_fp32:.2f}x the "
              f"fastest suite fp32 (target <= 0.6){shown}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deploy_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subject", default=",".join(SUBJECTS), help=f"comma-separated, from: {', '.join(SUBJECTS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-seconds", type=float, default=1.0, help="timed seconds per runtime per round")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.subject.split(",") if name.strip()]
    for name in names:
        if name not in SUBJECTS:
            raise SystemExit(f"--subject: unknown subject {name!r}; choose from {', '.join(SUBJECTS)}")
    torch.set_num_threads(args.threads)
    host = this_host()
    # Ratios are comparable only between runs on one class of CPU (the int8 kernels differ by ISA).
    print(f"host: {host.label} ({host.vendor}; int8 dot product: {'yes' if host.int8_dot_product else 'no'})")
    root = realdata_root()
    if root is None:
        print("no real data found (set BENCH_REALDATA): random weights, embedded generated images, agreement not judged")
    try:
        results = [compare(SUBJECTS[name], root, args.threads, args.rounds, args.round_seconds) for name in names]
    except UserError as error:
        raise SystemExit(f"deploy_compare: {error}") from None
    print(f"\nsummary on {host.label}:")
    print(f"{'subject':<48} {'fp32/plain fp32':>15} {'int8/fp32':>10} {'int8 agreement':>15}")
    for r in results:
        int8 = f"{r.int8_vs_fp32:.2f}" if r.int8_vs_fp32 is not None else "-"
        agree = f"{r.int8_agreement:.1f} %" if r.int8_agreement is not None else "not judged"
        print(f"{r.label:<48} {r.fp32_vs_plain:15.2f} {int8:>10} {agree:>15}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
