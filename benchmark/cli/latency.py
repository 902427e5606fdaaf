"""``bench latency``: time a task's model under several runtimes on this machine, write records."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from benchmark.cli.arguments import (
    add_model_arguments,
    add_progress_arguments,
    add_task_argument,
    command_values,
    config_values,
)

DEFAULT_OUTPUT = "runs/latency"


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser(
        "latency",
        help="measure inference latency per runtime (eager, onnxruntime, int8, compile, ...)",
        description=(
            "Warm-up, then at least --min-runs timed runs and --min-seconds (normal tier: 1024 runs and 60 s, as "
            "MLPerf Mobile; quick: 50 runs and 3 s) on a validation image of the task; every runtime other than "
            "eager is checked against eager fp32 on the validation data (accuracy gate). Resolution defaults to "
            "the task's (224, 320, 513), not a training recipe's."
        ),
    )
    add_task_argument(parser, task_name)
    add_model_arguments(parser)
    add = parser.add_argument
    add("--checkpoint", help="checkpoint written by bench run (its config fixes the model; --resolution may change)")
    add("--data", help="dataset root for the input image, calibration and the gate ('synthetic': embedded, default)")
    add("--runtime", default="eager", help="comma-separated runtimes (see `bench list`), default eager")
    add("--threads", type=int, default=1, help="CPU threads for every runtime (default 1: one core, as the papers)")
    add("--batch-size", type=int, default=1, dest="latency_batch_size", help="images per call (default 1)")
    add("--tier", choices=["quick", "normal"], default="normal", help="normal: 1024 runs and 60 s; quick: a few seconds")
    add("--warmup-runs", type=int, help="override the tier's warm-up runs")
    add("--warmup-seconds", type=float, help="override the tier's warm-up seconds")
    add("--min-runs", type=int, help="override the tier's minimum timed runs")
    add("--min-seconds", type=float, help="override the tier's minimum timed seconds")
    add("--max-seconds", type=float, help="stop the timed runs after this long even below --min-runs")
    add("--accuracy-images", type=int, default=256, help="validation images for the accuracy gate (0: no gate)")
    add("--calibration-images", type=int, default=32, help="images that calibrate static int8 quantization")
    add("--tflite", action="append", default=[], metavar="FILE",
        help="also time this .tflite file as its own row (litert-file, input in the file's own range) and, with "
             "--data, gate it against eager fp32 (repeatable)")
    add("--json", action="store_true", help="print a JSON list, one object per runtime")
    add("--output", default=DEFAULT_OUTPUT, help=f"folder for the records (default {DEFAULT_OUTPUT})")
    add_device_arguments(parser)
    add_progress_arguments(parser)
    parser.set_defaults(func=run)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device``: time the exported file on a phone (adb) or a board (ssh) with its own tool."""
    group = parser.add_argument_group("on-device timing (--device)")
    add = group.add_argument
    add("--device", help="adb, adb:SERIAL, ssh://user@host[:port] or local: export here, time there with the "
                         "device's own tool (runtimes: litert[-int8], onnxruntime[-int8], openvino[-int8]); with --data the "
                         "accuracy gate runs there too (the suite's timer)")
    add("--device-tool", help="script (the suite's timer, run by --device-python), benchmark_model, benchmark_app, "
                              "litert-benchmark (ai-edge-litert's Python benchmark, run by --device-python; ssh/local), "
                              "or PATH to a benchmark_model binary to push (adb default: the cache folder's "
                              "android_aarch64_benchmark_model)")
    add("--device-python", default="python3", help="the device's Python for the suite's timer (default python3)")
    add("--cpu-mask", help="taskset hex mask for benchmark_model (adb default: the cores with the top cpuinfo_max_freq)")
    add("--delegate", default="xnnpack", help="benchmark_model delegate: xnnpack (default), gpu, nnapi, none")
    add("--cooldown-c", type=float, help="before each run wait until the hottest thermal zone is at most this (C)")
    add("--cooldown-max-s", type=float, default=120.0, help="longest cool-down wait (default 120 s)")
    add("--keep", action="store_true", help="leave the device's work folder in place")
    add("--ssh-config", help="ssh client config file (ssh -F; default $BENCH_SSH_CONFIG, else ssh's own)")
    add("--device-root", help="folder on the device for the work folder (default /data/local/tmp on adb, else /tmp)")


LATENCY_FLAGS = (
    "checkpoint", "runtime", "threads", "latency_batch_size", "tier", "warmup_runs", "warmup_seconds", "min_runs",
    "min_seconds", "max_seconds", "accuracy_images", "calibration_images", "json", "output", "tflite",
    "device", "device_tool", "device_python", "cpu_mask", "delegate", "keep", "cooldown_c", "cooldown_max_s", "ssh_config",
    "device_root",
)


def run(args: argparse.Namespace) -> int:
    from benchmark.latency.timing import TIERS, custom_tier

    flags = command_values(args, LATENCY_FLAGS)
    given = config_values(args, LATENCY_FLAGS)
    tier = custom_tier(
        TIERS[flags["tier"]],
        warmup_runs=flags["warmup_runs"],
        warmup_s=flags["warmup_seconds"],
        min_runs=flags["min_runs"],
        min_s=flags["min_seconds"],
        max_s=flags["max_seconds"],
    )
    if getattr(args, "device", None):
        return run_on_device(args, flags, given, tier)
    from benchmark.latency.runner import LatencyOptions, benchmark
    from benchmark.latency.runtimes import parse_runtimes
    from benchmark.latency.runtimes.tflite_file import TfliteFileRuntime
    from benchmark.runs.config import resolve_model
    from benchmark.runs.records import write_json_atomic
    from tasks import get_task
    from tasks.preprocessing import mean_std

    task = get_task(args.task)
    # Checked before anything is built: a missing runtime package is a one-line error at once.
    options = LatencyOptions(
        runtimes=parse_runtimes(flags["runtime"]),
        threads=flags["threads"],
        batch_size=flags["latency_batch_size"],
        tier=tier,
        accuracy_images=flags["accuracy_images"],
        calibration_images=flags["calibration_images"],
    )
    files = [TfliteFileRuntime(path) for path in flags["tflite"]]
    for runtime in files:
        runtime.check_available()
    loaded = resolve_model(task, given, checkpoint=flags["checkpoint"], recipe=args.config)
    cfg, model = loaded.config, loaded.model
    for runtime in files:  # a given file is fed its own input range: the preset's normalisation undone
        runtime.pixels = mean_std(cfg.get("preset") or "torchvision")
    output = Path(flags["output"])
    as_json = flags["json"]

    def save(record) -> None:
        path = write_json_atomic(output / record.file_name(), record.to_json())
        if not as_json:
            print(format_row(record, None), file=sys.stderr)
            print(f"  record: {path}", file=sys.stderr)

    if not as_json:
        print(header(task.name, cfg, options, tier), file=sys.stderr)
    records = benchmark(task, cfg, model, options, on_record=save, extra_runtimes=files, weights=loaded.weights)
    if as_json:
        print(json.dumps([r.to_json() for r in records], sort_keys=True, default=str))
    else:
        print(format_table(records))
    return 0


def header(task: str, cfg: dict, options, tier) -> str:
    """What is timed, and how long at least: the first line on stderr."""
    return (f"{task} {cfg['backbone']} {cfg['resolution']}x{cfg['resolution']}, batch {options.batch_size}, "
            f"{options.threads} thread(s), tier {tier.name} (>= {tier.min_runs} runs and {tier.min_s:g} s)")


def run_on_device(args: argparse.Namespace, flags: dict, given: dict, tier) -> int:
    """``--device``: checked (the target's address and that it answers, then runtimes, tool and a pushed
    binary's CPU) before the model is built; one record per runtime, its raw tool log beside it (``.log``).
    The address is read and the target reached before torch is imported: a wrong ``--device`` is one
    line at once."""
    from benchmark.devices.transports import open_transport

    transport = open_transport(args.device, args.ssh_config)
    from benchmark.devices.runner import DeviceOptions, check_target, measure_on_device
    from benchmark.devices.work_folder import sigint_deferred
    from benchmark.runs.config import resolve_model
    from benchmark.runs.records import write_json_atomic, write_text_atomic
    from tasks import get_task

    task = get_task(args.task)
    options = DeviceOptions(
        runtimes=tuple(n.strip() for n in flags["runtime"].split(",") if n.strip()), threads=flags["threads"],
        tier=tier, tool=args.device_tool, python=args.device_python, cpu_mask=args.cpu_mask, delegate=args.delegate,
        keep=args.keep, cooldown_c=args.cooldown_c, cooldown_max_s=args.cooldown_max_s,
        calibration_images=flags["calibration_images"], root=args.device_root,
        # The gate on the device with --data only: every batch travels to the target and back.
        accuracy_images=flags["accuracy_images"] if "data" in given else 0,
    )  # fmt: skip
    target = check_target(transport, options)  # the tools and the device's CPU, before the model is built
    loaded = resolve_model(task, given, checkpoint=flags["checkpoint"], recipe=args.config)
    cfg, model = loaded.config, loaded.model
    output = Path(flags["output"])
    as_json = flags["json"]

    def save(measurement) -> None:
        name = measurement.record.file_name()
        output.mkdir(parents=True, exist_ok=True)
        log = output / (Path(name).stem + ".log")
        with sigint_deferred():  # Ctrl-C now leaves the log and its record both written, or neither
            write_text_atomic(log, measurement.log)
            path = write_json_atomic(output / name, replace(measurement.record, raw_log=log.name).to_json())
        if not as_json:
            if not saved:  # the header comes with the first row: a run that fails prints its one error line alone
                print(f"{task.name} {cfg['backbone']} {cfg['resolution']}x{cfg['resolution']} on {transport.address}, "
                      f"{options.threads} thread(s), tier {tier.name}", file=sys.stderr)  # fmt: skip
            print(format_row(measurement.record, None), file=sys.stderr)
            print(f"  record: {path}", file=sys.stderr)
        saved.append(path)

    saved: list[Path] = []
    results = measure_on_device(transport, task, cfg, model, options, weights=loaded.weights,
                                on_measurement=save, target=target)  # fmt: skip
    records = [m.record for m in results]
    if as_json:
        print(json.dumps([r.to_json() for r in records], sort_keys=True, default=str))
    else:
        print(format_table(records))
        target = records[0].target if records else {}
        print(f"target: {target.get('model')} ({target.get('address')}), tool {target.get('tool', {}).get('name')}")
    return 0


def format_row(record, baseline) -> str:
    s = record.stats
    ratio = f"{s.p50_ms / baseline.stats.p50_ms:6.2f}x" if baseline is not None else ""
    return (
        f"{record.runtime:<18} {record.precision:>5} {_ms(s.p50_ms, 9)} {_ms(s.p90_ms, 9)} {_ms(s.mean_ms, 9)} "
        f"{_ms(s.std_ms, 8)} {_ms(s.min_ms, 9)} {s.runs:6d} {record.init_ms / 1000:7.1f}s {ratio:>7} {format_accuracy(record.accuracy)}"
    )


def _ms(value, width: int) -> str:
    """A figure in ms, or '-' where the device tool does not give it (benchmark_model has no p90)."""
    return f"{value:{width}.2f}" if value is not None else f"{'-':>{width}}"


def format_accuracy(gate) -> str:
    if gate is None:
        return "-"
    if gate.note:
        return gate.note
    if gate.basis == "reference":
        return f"{gate.metric} {gate.value:.2f} (reference)"
    if gate.value is None:
        return "-"
    parts = [f"{gate.metric} {gate.value:.2f}"]
    parts.append(f"ratio {gate.ratio:.3f}" if gate.ratio is not None else "ratio n/a")
    if gate.agreement is not None:
        parts.append(f"agree {gate.agreement:.1f}%")
    parts.append(f"maxdiff {gate.max_abs_diff:.3g}")
    if gate.verdict:
        parts.append(gate.verdict.upper() + (f" ({gate.reason})" if gate.reason else ""))
    elif gate.flagged:
        parts.append("FLAGGED")
    return ", ".join(parts)


def format_table(records) -> str:
    baseline = next((r for r in records if r.runtime == "eager"), records[0] if records else None)
    header = (
        f"{'runtime':<18} {'prec':>5} {'p50 ms':>9} {'p90 ms':>9} {'mean ms':>9} {'std ms':>8} {'min ms':>9} "
        f"{'runs':>6} {'init':>8} {'vs ' + (baseline.runtime if baseline else ''):>7} accuracy gate"
    )
    lines = [header, "-" * len(header)]
    for record in records:
        lines.append(format_row(record, baseline))
        if record.postprocess:
            for part in ("decode_nms", "end_to_end"):
                stats = record.postprocess[part]
                lines.append(f"  {part:<16} {'':>5} {stats['p50_ms']:9.2f} {stats['p90_ms']:9.2f} {stats['mean_ms']:9.2f} {stats['std_ms']:8.2f} {stats['min_ms']:9.2f} {stats['runs']:6d}")
    if records and records[0].input:
        lines.append(f"input: {records[0].input}; memory: {records[0].memory['method']}")
    return "\n".join(lines)
