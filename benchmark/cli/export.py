"""``bench export``: write a task's model as a deployable file (ONNX, TFLite, OpenVINO IR; fp32 or
static int8) with a JSON sidecar, the same files ``bench latency`` times."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.arguments import (
    add_model_arguments,
    add_progress_arguments,
    add_task_argument,
    command_values,
    config_values,
)

EXPORT_FLAGS = ("checkpoint", "format", "int8", "calibration_images", "export_batch_size", "out")


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser(
        "export",
        help="write the model as ONNX / TFLite / OpenVINO IR (fp32 or int8) with a JSON sidecar",
        description=(
            "Export the task's model (random init, --weights FILE.tflite or --checkpoint CKPT) at a static "
            "input shape. --int8 calibrates static quantization on --data's validation images (evenly spread). "
            "Next to --out goes a .json sidecar: input size and layout, the preset's normalisation, label "
            "names, the weights' hash and the commit."
        ),
    )
    add_task_argument(parser, task_name)
    add_model_arguments(parser)
    add = parser.add_argument
    add("--checkpoint", help="checkpoint written by bench run (its config fixes the model; --resolution may change)")
    add("--data", help="dataset root for the example input and int8 calibration ('synthetic': embedded, default)")
    add("--format", required=True, help="onnx, tflite or openvino")
    add("--int8", action="store_true", help="static int8 quantization calibrated on the task's images")
    add("--calibration-images", type=int, default=32, help="images that calibrate --int8 (default 32)")
    add("--batch-size", type=int, default=1, dest="export_batch_size", help="static batch of the file (default 1)")
    add("--out", required=True, help="output file (.onnx, .tflite, or .xml for OpenVINO, with its .bin)")
    add_progress_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = config_values(args, EXPORT_FLAGS)  # checked before the heavy imports
    from backbones.errors import UserError
    from benchmark.latency.inputs import calibration_batches, load_task_images
    from benchmark.latency.runtimes.export import (
        FORMATS,
        SUFFIXES,
        conversion_failure,
        export_model,
        format_unavailable,
        write_sidecar,
    )
    from benchmark.runs.config import resolve_model
    from tasks import get_task
    from tasks.preprocessing import mean_std
    from tasks.progress import stage

    task = get_task(args.task)
    flags = command_values(args, EXPORT_FLAGS)
    fmt, out = flags["format"], Path(flags["out"])
    # Bad input is caught before anything is built: the format, the file name, the packages.
    if fmt not in FORMATS:
        raise UserError(f"--format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if out.suffix != SUFFIXES[fmt]:
        raise UserError(f"--out: {out} does not end in {SUFFIXES[fmt]}, the suffix of a {fmt} file")
    reason = format_unavailable(fmt, flags["int8"])
    if reason:
        raise UserError(f"--format {fmt}{' --int8' if flags['int8'] else ''}: {reason}")
    if flags["export_batch_size"] < 1:
        raise UserError(f"--batch-size must be >= 1, got {flags['export_batch_size']}")
    if flags["calibration_images"] < 1 and flags["int8"]:
        raise UserError(f"--calibration-images must be >= 1 with --int8, got {flags['calibration_images']}")

    loaded = resolve_model(task, given, checkpoint=flags["checkpoint"], recipe=args.config)
    cfg, model = loaded.config, loaded.model
    images = load_task_images(task, cfg, flags["export_batch_size"])
    calibration, calibration_info = (
        calibration_batches(images, flags["calibration_images"], 0) if flags["int8"] else ([], None)
    )
    try:
        with stage(f"export {fmt}{' int8' if flags['int8'] else ''}"):
            details = export_model(model.eval(), images.example, fmt, int8=flags["int8"], calibration=calibration, out_path=out)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - a converter that cannot take this model: one line, exit 2
        raise UserError(f"--format {fmt}: cannot export {task.name} {cfg['backbone']} ({conversion_failure(error)})") from None
    preset = cfg.get("preset") or "torchvision"
    mean, std = mean_std(preset)
    sidecar = write_sidecar(
        out, example=images.example, fmt=fmt, int8=flags["int8"], mean=mean, std=std, labels=class_names(task, cfg),
        extra={
            "task": task.name, "backbone": cfg["backbone"], "width": cfg.get("width"),
            "resolution": int(cfg["resolution"]), "num_classes": int(cfg["num_classes"]), "preset": preset,
            "weights": loaded.weights, "calibration": calibration_info,
            "export": {k: v for k, v in details.items() if k != "path"},
        },
    )  # fmt: skip
    print(f"{out}\n{sidecar}")
    print(f"bench export: {task.name} {cfg['backbone']} {details['precision']} {fmt} -> {out}", file=sys.stderr)
    return 0


def class_names(task, cfg: dict) -> list[str] | None:
    """The data's label names (index = the model's class), or None when the data gives none."""
    try:
        datamodule = task.build_datamodule(dict(cfg, num_workers=0))
        datamodule.prepare_data()
        datamodule.setup("validate")
        names = datamodule.class_names()
    except Exception:  # noqa: BLE001 - the names are a convenience; the file is still valid without them
        return None
    return [str(n) for n in names] or None
