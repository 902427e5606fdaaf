"""Print network, post-processing and end-to-end milliseconds side by side (not a test).

``python -m benchmark.latency.postprocess_speed [--threads 2] [--runs 200]``: SSDLite-MNv2 at 320 with
90 classes (TF's COCO label map), eager and ONNX Runtime. Shows the exact (per-class loop)
post-processing, the fast one, and one end-to-end call (network + fast post-processing) next to
the sum of its parts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from backbones import create_backbone
from tasks.detection.postprocess import postprocess_detections, postprocess_exact
from tasks.detection.ssdlite import SSDLite


def p50_ms(call: Callable[[], Any], runs: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="postprocess-speed-") as folder:
        compare(folder)


def compare(folder: str) -> None:
    """The table, with the ONNX export written into ``folder`` (removed by the caller)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--resolution", type=int, default=320)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = (args.resolution, args.resolution)
    model = SSDLite(create_backbone("mnv2"), 90).eval()
    anchors = model.anchors(size)
    image = torch.randn(1, 3, *size)

    def eager(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return model(x)

    forwards = {"eager": eager}
    try:
        from pathlib import Path

        import onnxruntime

        from benchmark.latency.runtimes.onnxruntime import export_onnx

        export_onnx(model, image, Path(folder) / "ssdlite.onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(Path(folder) / "ssdlite.onnx"), options,
                                               providers=["CPUExecutionProvider"])
        array = image.numpy()
        forwards["onnxruntime"] = lambda x: tuple(torch.from_numpy(o) for o in session.run(None, {"input": array}))
    except ImportError:
        pass

    print(f"SSDLite-MNv2 {size[0]}x{size[1]}, 90 classes, {len(anchors)} anchors, {args.threads} thread(s), "
          f"p50 of {args.runs} runs (ms)")
    print(f"{'runtime':<12} {'network':>8} {'exact pp':>9} {'fast pp':>8} {'net+pp':>7} {'end to end':>11} {'ratio':>6}")
    for name, forward in forwards.items():
        outputs = forward(image)
        network = p50_ms(lambda forward=forward: forward(image), args.runs)
        exact = p50_ms(lambda outputs=outputs: postprocess_exact(*outputs, anchors, size), 3, warmup=1)
        fast = p50_ms(lambda outputs=outputs: postprocess_detections(*outputs, anchors, size), args.runs)
        end_to_end = p50_ms(lambda forward=forward: postprocess_detections(*forward(image), anchors, size), args.runs)
        print(f"{name:<12} {network:8.2f} {exact:9.1f} {fast:8.2f} {network + fast:7.2f} {end_to_end:11.2f} "
              f"{end_to_end / (network + fast):6.2f}")


if __name__ == "__main__":
    main()
