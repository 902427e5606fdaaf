"""Images per second of one quantized ``.tflite`` file on every road the suite runs it, on the same images.

``python -m benchmarks.integer_speed --weights FILE.tflite --data ROOT`` reads the first ``--images``
validation images once (decoding is not timed), then times, one after another on those images:

- ``tflite-int8`` and ``xnnpack-int8``: the file's own integers in PyTorch
  (``tasks.tflite.integer_model``, what ``bench eval --runtime`` runs, no LiteRT check);
- LiteRT on the same bytes: its default interpreter (XNNPACK delegate) and its builtin kernels,
  one image per invoke (the files take a batch of one);
- the float import: the suite's eager fp32 model with the file's dequantized weights.

Each road runs one warm-up batch first. The table goes to stdout with the machine's load average
before and after: these are ratios on one machine at one time, not records.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backbones.errors import UserError


@dataclass(frozen=True)
class Timing:
    """One road's pass over the images."""

    runtime: str
    images: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


def load_batches(task_name: str, weights: Path, data: str, images: int, batch_size: int):
    """The float model imported from ``weights``, its preset, and the first ``images`` validation
    images of ``data`` as the suite's normalised float batches."""
    from tasks import get_task

    task = get_task(task_name)
    model, report = task.import_tflite(str(weights))
    facts = report.facts
    cfg = {"data": data, "batch_size": batch_size, "num_workers": 0, "on_bad_sample": "error",
           "resolution": facts.resolution, "preset": facts.preset, "backbone": facts.backbone,
           "width": facts.width, "num_classes": facts.num_classes}
    datamodule = task.build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("validate")
    batches: list[torch.Tensor] = []
    count = 0
    for batch in datamodule.val_dataloader():
        if batch is None:
            continue
        x = batch[0][: images - count]
        if tuple(x.shape[-2:]) != (facts.resolution, facts.resolution):
            raise UserError(f"--data: {data} gives {tuple(x.shape[-2:])} images; {weights} takes "
                            f"{facts.resolution}x{facts.resolution} (classification and detection data only)")
        batches.append(x)
        count += len(x)
        if count >= images:
            break
    if not batches:
        raise UserError(f"--data: {data} has no validation images")
    return model.eval(), facts.preset, batches


def time_road(name: str, run: Callable[[torch.Tensor], object], batches: list[torch.Tensor]) -> Timing:
    """One warm-up batch (first-call allocation and kernel selection), then every batch timed."""
    with torch.no_grad():
        run(batches[0])
        started = time.perf_counter()
        for x in batches:
            run(x)
        seconds = time.perf_counter() - started
    return Timing(name, sum(len(x) for x in batches), seconds)


def litert_road(weights: Path, threads: int, *, delegate: bool) -> Callable[[np.ndarray], None]:
    """LiteRT invoked once per image (the files' batch is 1)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    options = {} if delegate else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = Interpreter(model_path=str(weights), num_threads=threads, **options)
    interpreter.allocate_tensors()
    index = int(interpreter.get_input_details()[0]["index"])

    def run(pixels: np.ndarray) -> None:
        for image in pixels:
            interpreter.set_tensor(index, image[None])
            interpreter.invoke()

    return run


def measure(args: argparse.Namespace) -> list[Timing]:
    from tasks.preprocessing import mean_std
    from tasks.tflite.integer_model import IntegerTFLiteModel

    float_model, preset, batches = load_batches(args.task, args.weights, args.data, args.images, args.batch_size)
    integer = {a: IntegerTFLiteModel(args.weights, float_model, mean_std(preset), arithmetic=a) for a in ("tflite", "xnnpack")}
    pixels = [integer["tflite"].to_pixels(x) for x in batches]  # the bytes every road sees
    by_pixels = dict(zip((id(x) for x in batches), pixels, strict=True))
    roads: list[tuple[str, Callable[[torch.Tensor], object]]] = [
        ("tflite-int8 (PyTorch, builtin-kernel arithmetic)", integer["tflite"]),
        ("xnnpack-int8 (PyTorch, XNNPACK arithmetic)", integer["xnnpack"]),
    ]
    for delegate, label in ((True, "XNNPACK delegate"), (False, "builtin kernels")):
        litert = litert_road(args.weights, args.threads, delegate=delegate)
        roads.append((f"LiteRT {label}, {args.threads} threads", lambda x, run=litert: run(by_pixels[id(x)])))
    roads.append(("float import (eager fp32)", float_model))
    timings = []
    for name, run in roads:
        timings.append(time_road(name, run, batches))
        print(f"  {name}: {timings[-1].rate:.2f} images/s", file=sys.stderr)
    return timings


def table(timings: list[Timing]) -> str:
    reference = next(t for t in timings if t.runtime.startswith("LiteRT XNNPACK"))
    lines = [f"{'runtime':<50} {'images':>6} {'seconds':>8} {'images/s':>9} {'x LiteRT':>9}"]
    for t in timings:
        lines.append(f"{t.runtime:<50} {t.images:>6} {t.seconds:>8.2f} {t.rate:>9.2f} {t.rate / reference.rate:>9.3f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.integer_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="quantized .tflite file (uint8 image input)")
    parser.add_argument("--data", required=True, help="dataset root in the task's layout (ImageNet / COCO)")
    parser.add_argument("--task", default="classification", choices=["classification", "detection"])
    parser.add_argument("--images", type=int, default=64, help="how many validation images (default 64)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="LiteRT's threads (PyTorch's: torch.set_num_threads, default all cores)")
    args = parser.parse_args(argv)
    if not args.weights.is_file():
        parser.error(f"--weights: {args.weights} is not a file")
    for flag in ("images", "batch_size", "threads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmark.runs.records import environment

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    try:
        timings = measure(args)
    except UserError as error:
        print(f"integer_speed: error: {error}", file=sys.stderr)
        return 2
    env = environment("cpu")
    print(f"{args.weights.name} on {timings[0].images} images of {args.data}, batch {args.batch_size}, "
          f"{args.threads} threads; {env['cpu']}, torch {env['torch']}, commit {env['commit']}")
    print(table(timings))
    print(f"load average (1 min) before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores: "
          "ratios from one run, not records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
