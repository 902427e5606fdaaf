"""Acceptance benchmark: does the remote path add cost to what it measures?

``python -m benchmarks.device_compare_local --device ssh://root@127.0.0.1:PORT [--ssh-config F]``
exports each runtime's file once (the ``bench export`` code), then, interleaved round by round in
one run, times the SAME file with the suite's device-side timer here (a fresh local process) and on
the target (started over the transport), and prints the p50 ratio
(target / local) per runtime. On ssh://127.0.0.1 the target is this machine: the ratio should be ~1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmark.devices.parsers import parse_device_timer
from benchmark.devices.tools import TIMER_SCRIPT
from benchmark.devices.transports import open_transport
from benchmark.latency.runtimes import device_runtimes
from benchmark.latency.runtimes.export import SUFFIXES, export_model
from benchmark.runs.config import resolve_config
from tasks import get_task
from tasks.factory import build_model


def p50_us(runs_us: list[float]) -> float:
    return statistics.median(runs_us)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", required=True)
    parser.add_argument("--ssh-config")
    parser.add_argument("--device-python", default=sys.executable)
    parser.add_argument("--runtime", default="litert,onnxruntime,openvino")
    parser.add_argument("--backbone", default="mnv1")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-runs", type=int, default=200)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = get_task("classification")
    given = {"backbone": args.backbone, "width": args.width, "resolution": args.resolution}
    model = build_model(task, resolve_config(task, given, recipe=None, shipped_recipes=False)).eval()
    example = torch.rand(1, 3, args.resolution, args.resolution)
    transport = open_transport(args.device, args.ssh_config)
    timing = ["--threads", str(args.threads), "--warmup-runs", "10", "--warmup-s", "0.5",
              "--min-runs", str(args.min_runs), "--min-s", f"{args.min_seconds:g}"]  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as folder:
        host = Path(folder)
        np.save(host / "input.npy", example.numpy())
        work = transport.shell(["mktemp", "-d", "/tmp/bench-compare-XXXXXX"], timeout=60).stdout.strip()
        try:
            transport.push(TIMER_SCRIPT, f"{work}/{TIMER_SCRIPT.name}")
            transport.push(host / "input.npy", f"{work}/input.npy")
            files = {}
            for name in args.runtime.split(","):
                fmt, int8 = device_runtimes()[name].export_format, device_runtimes()[name].precision == "int8"
                path = host / f"{name}{SUFFIXES[fmt]}"
                export_model(model, example, fmt, int8=int8, out_path=path)
                transport.push(path, f"{work}/{path.name}")
                if fmt == "openvino":
                    transport.push(path.with_suffix(".bin"), f"{work}/{path.stem}.bin")
                files[name] = path
            for round_index in range(args.rounds):
                for name, path in files.items():
                    # Here: the same timer in a fresh process of this machine's Python (as on the
                    # target), so both sides differ only by the transport that started them.
                    here = subprocess.run([sys.executable, str(TIMER_SCRIPT), "--model", str(path), "--input",
                                           str(host / "input.npy"), *timing], capture_output=True, text=True, timeout=600)  # fmt: skip
                    local = [u / 1e6 for u in parse_device_timer(here.stdout).runs_us]
                    ran = transport.shell([args.device_python, f"{work}/{TIMER_SCRIPT.name}", "--model", f"{work}/{path.name}",
                                           "--input", f"{work}/input.npy", *timing], timeout=600)  # fmt: skip
                    remote = parse_device_timer(ran.stdout).runs_us
                    entry = results.setdefault(name, {"local": [], "target": []})
                    entry["local"].append(p50_us([d * 1e6 for d in local]))
                    entry["target"].append(p50_us(list(remote)))
                    print(f"round {round_index + 1} {name}: local p50 {entry['local'][-1]:.1f} us, "
                          f"{args.device} p50 {entry['target'][-1]:.1f} us", file=sys.stderr)  # fmt: skip
        finally:
            transport.shell(["rm", "-rf", work], timeout=60)
    summary = {}
    for name, entry in results.items():
        local, target = statistics.median(entry["local"]), statistics.median(entry["target"])
        summary[name] = {"local_p50_us": local, "target_p50_us": target, "ratio": target / local}
        print(f"{name:<18} local p50 {local / 1000:8.3f} ms  {args.device} p50 {target / 1000:8.3f} ms  ratio {target / local:.3f}")
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
