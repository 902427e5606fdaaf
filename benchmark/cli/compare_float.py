"""``bench eval --compare-float``: the per-layer quantization report (``tasks.tflite.compare``) as a
printed table, ``compare-float.json`` and ``compare-float.csv`` beside the run's ``result.json``."""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path
from typing import Any

DEFAULT_IMAGES = 32  # MobileNetV2 224 on 2 cores: about 5 minutes with the default layers
DEFAULT_LAYERS = 5
CSV_COLUMNS = ("op", "kind", "tensor", "shape", "scale", "zero_point", "kernel_mean_steps", "kernel_off_pct",
               "mean_error_steps", "rmse_steps", "max_abs_error_steps", "isolated_sqnr_db", "accumulated_sqnr_db",
               "error_alone_pct")
VARIANTS = ("kept_in_float", "unrounded")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--compare-float", action="store_true",
        help="with --runtime tflite-int8/xnnpack-int8: a per-layer report of where the integer path and the "
             "file's float graph part (each op's error, the metric with each layer kept in float), written "
             "to <output>/compare-float.json and .csv")
    add("--compare-images", type=_positive, help=f"images the comparison runs on (default {DEFAULT_IMAGES})")
    add("--compare-layers", type=_layers,
        help=f"layers that get the metric with the layer kept in float (and unrounded): the K whose output "
             f"rounded alone costs the float graph most, or 'all' (default {DEFAULT_LAYERS})")


def check(args: argparse.Namespace, arithmetic: str | None) -> None:
    """One-line errors for the flags before anything is read."""
    from backbones.errors import UserError

    if not args.compare_float:
        if args.compare_images is not None or args.compare_layers is not None:
            raise UserError("--compare-images and --compare-layers go with --compare-float")
        return
    if not arithmetic:
        raise UserError("--compare-float compares a quantized file's integer path with its float graph: "
                        "give --weights FILE.tflite with --runtime tflite-int8 or xnnpack-int8")


def run_comparison(task: Any, model: Any, datamodule: Any, output: Path, args: argparse.Namespace) -> Path:
    """Compare, print the table, write the JSON and CSV; returns the JSON's path."""
    from benchmark.runs.records import write_json_atomic, write_text_atomic
    from tasks.tflite.compare import compare_float

    layers = DEFAULT_LAYERS if args.compare_layers is None else args.compare_layers
    images = args.compare_images or DEFAULT_IMAGES
    comparison = compare_float(task, model, datamodule, images=images, layers=None if layers == "all" else layers)
    report = comparison.as_dict()
    print(table(report))
    path = write_json_atomic(output / "compare-float.json", report)
    write_text_atomic(output / "compare-float.csv", to_csv(report))
    return path


def table(report: dict[str, Any]) -> str:
    """The report as text: one line per op, the chosen ones with their kept-in-float metrics."""
    metric = report["metric"]
    integer, floats = report["metrics"]["integer"], report["metrics"]["float"]
    lines = [
        f"compare-float: {Path(report['file']).name}, arithmetic {report['arithmetic']}, {report['images']} images: "
        f"{metric} integer {integer[metric]:.2f}, float graph {floats[metric]:.2f} ({floats[metric] - integer[metric]:+.2f})",
        "kern: the integer output minus the op in float on the integer path's inputs rounded to the grid (mean, steps)",
        "mean/rmse/max: the integer output minus the op in float on the integer path's inputs (steps of the output's "
        "scale); iso/acc: SQNR in dB of that error / of the integer tensor against the float graph's",
        "alone: the float graph with only this output rounded, its output error as % of the integer path's",
        f"float op / unrounded: the op in float, output quantized to its scale / never rounded (its readers in float "
        f"too): {metric} (change), % of the integer path's output error left",
        f"{'op':>4} {'kind':<17} {'tensor':<30} {'shape':<12} {'scale':>7} {'kern':>6} {'mean':>6} {'rmse':>5} "
        f"{'max':>5} {'iso':>5} {'acc':>5} {'alone':>6}  {'float op':>21}  {'unrounded':>21}",
    ]
    for row in report["layers"]:
        alone = "     -" if row["error_alone_pct"] is None else f"{row['error_alone_pct']:5.1f}%"
        name = row["tensor"].split(";")[0]  # a fused op's output carries every folded name; the first is the layer's
        name = name if len(name) <= 30 else "…" + name[-29:]
        shape = "x".join(str(v) for v in row["shape"][1:])
        lines.append(
            f"{row['op']:>4} {row['kind']:<17} {name:<30} {shape:<12} {row['scale']:7.5f} "
            f"{row['kernel_mean_steps']:+6.3f} {row['mean_error_steps']:+6.3f} {row['rmse_steps']:5.3f} "
            f"{row['max_abs_error_steps']:5.2f} {_db(row['isolated_sqnr_db'])} {_db(row['accumulated_sqnr_db'])} "
            f"{alone}  {_variant(row['kept_in_float'], metric):>21}  {_variant(row['unrounded'], metric):>21}"
        )
    chosen = report["kept_in_float_ops"]
    lines.append(f"float op / unrounded for {len(chosen)} of {len(report['layers'])} ops ({report['ranking']}): "
                 + (", ".join(str(op) for op in chosen) or "none") + f"; {report['wall_time_s']:.0f} s")
    return "\n".join(lines)


def _variant(result: dict[str, Any] | None, metric: str) -> str:
    if not result:
        return ""
    return f"{result['metrics'][metric]:6.2f} ({result['delta'][metric]:+6.2f}) {result['output_error_left_pct']:5.1f}%"


def to_csv(report: dict[str, Any]) -> str:
    """One row per op: the error columns, then each variant's metrics (empty where not run)."""
    names = sorted(report["metrics"]["integer"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"{v}_{kind}{n}" for v in VARIANTS for kind in ("", "delta_") for n in names),
                     *(f"{v}_output_error_left_pct" for v in VARIANTS)])
    for row in report["layers"]:
        values = [("x".join(map(str, row[c])) if c == "shape" else row[c]) for c in CSV_COLUMNS]
        for variant in VARIANTS:
            result = row[variant]
            values += [result[key][n] if result else "" for key in ("metrics", "delta") for n in names]
        values += [row[v]["output_error_left_pct"] if row[v] else "" for v in VARIANTS]
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


def _db(value: float | None) -> str:
    return f"{'inf':>5}" if value is None or math.isinf(value) else f"{value:5.1f}"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _layers(text: str) -> int | str:
    if text == "all":
        return text
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count (0 or more) or 'all', got {value}")
    return value
