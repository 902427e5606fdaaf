"""``bench eval``: evaluate given weights on a dataset's val split (no training), write a record.

Weights come from an official TFLite checkpoint (``--weights``, imported into the suite's own
modules; with ``--runtime tflite-int8`` run instead in the file's own integer arithmetic,
``tasks.tflite.integer_model``), a ``bench run`` checkpoint (``--checkpoint``) or torchvision (``--pretrained``). The record
holds metrics in percent, the image count, 95 % bootstrap intervals, the preset and the weights'
source with the file's sha256.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.cli import compare_float
from benchmark.cli.arguments import add_progress_arguments, add_task_argument
from tasks.tflite.executions import EXECUTIONS

if TYPE_CHECKING:
    from benchmark.runs.schema import EvaluationRecord

# Task flags (added by the task's add_model_arguments) that change how predictions are scored.
EVAL_SETTINGS = ("max_detections", "nms_iou", "score_threshold", "nms")
# Settings a file's own post-processing adds (recorded only when set: TFLite's SSD op).
FILE_SETTINGS = ("nms", "max_classes_per_detection", "box_scales")


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser("eval", help="evaluate weights on a val split, write <output>/result.json")
    add_task_argument(parser, task_name)
    add = parser.add_argument
    add("--backbone", help="registered backbone (with --weights: inferred from the file when omitted)")
    add("--width", type=float, help="width multiplier (with --weights: inferred from the file)")
    add("--resolution", type=int, help="input side (with --weights: the file's input size)")
    add("--data", required=True, help="dataset root (ImageNet / VOC / COCO layout)")
    add("--split", default="val", choices=["val"], help="split to evaluate (val)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="official TFLite checkpoint (.tflite)")
    source.add_argument("--checkpoint", help="checkpoint written by bench run")
    source.add_argument("--pretrained", choices=["torchvision", "timm"], help="torchvision's or timm's ImageNet weights")
    add("--runtime", choices=EXECUTIONS, default="eager",
        help="eager: the suite's PyTorch model in fp32 (with --weights: the file's dequantized weights); "
             "tflite-int8 / xnnpack-int8: --weights FILE.tflite run in its own integers as TFLite's builtin "
             "kernels / as XNNPACK (LiteRT's default) compute them")
    add("--check-litert", type=int, default=0, metavar="N",
        help="with tflite-int8 / xnnpack-int8: also run the first N batches through LiteRT on the same bytes and "
             "record how many raw outputs agree (default 0: no check)")
    add("--preset", help="preprocessing: torchvision, tf-inception, tf-deeplab, tf-ssd (default: what the weights imply)")
    add("--batch-size", type=int, default=32)
    add("--num-workers", type=int, default=0)
    add("--output", help="folder for result.json (default runs/eval-<task>-<backbone>-<time>)")
    compare_float.add_arguments(parser)
    add_progress_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backbones.errors import UserError
    from benchmark.runs.records import write_json_atomic
    from tasks import get_task
    from tasks.evaluate import evaluate

    task = get_task(args.task)
    task.evaluator()  # a task without one is a one-line error before anything is read
    started = time.perf_counter()
    arithmetic = EXECUTIONS[args.runtime].arithmetic
    if arithmetic and not args.weights:
        raise UserError(f"--runtime {args.runtime} runs a quantized file: give it with --weights FILE.tflite")
    compare_float.check(args, arithmetic)
    if (args.check_litert and not arithmetic) or args.check_litert < 0:
        raise UserError(f"--check-litert {args.check_litert}: a number of batches (0 or more) with --runtime "
                        "tflite-int8 or xnnpack-int8")
    model, cfg, weights = _model_and_config(task, args)
    precision = "fp32"
    if arithmetic:
        from tasks.preprocessing import mean_std
        from tasks.tflite.integer_model import IntegerTFLiteModel

        model = IntegerTFLiteModel(args.weights, model, mean_std(cfg["preset"]), arithmetic=arithmetic,
                                   check_litert=args.check_litert)
        precision = model.precision
    datamodule = task.build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("validate")  # check the classes before the long part
    expected = cfg["num_classes"]
    # A model with a label map (TF's 90-id COCO detectors) predicts its own class ids.
    if datamodule.num_classes and datamodule.num_classes != expected and not getattr(model, "label_map", None):
        raise UserError(
            f"--data: {args.data} has {datamodule.num_classes} classes but the model predicts {expected}"
        )
    result = evaluate(task, model, datamodule)
    output = Path(args.output or f"runs/eval-{task.name}-{cfg['backbone']}-{time.strftime('%Y%m%d-%H%M%S')}")
    record = evaluation_record(task, cfg, args, datamodule, result, weights, precision,
                               model.agreement() if arithmetic else None, time.perf_counter() - started)  # fmt: skip
    path = write_json_atomic(output / "result.json", record.to_json())
    print_summary(task, cfg, record, args.runtime, arithmetic)
    print(f"result record: {path}", file=sys.stderr)
    if args.compare_float:
        print(f"per-layer report: {compare_float.run_comparison(task, model, datamodule, output, args)}", file=sys.stderr)
    return 0


def evaluation_record(task, cfg: dict[str, Any], args: argparse.Namespace, datamodule, result, weights: dict[str, Any],
                      precision: str, agreement: dict[str, Any] | None, wall_s: float) -> EvaluationRecord:  # fmt: skip
    """The ``evaluation`` record: metrics in percent with 95 % bootstrap intervals, the data, the settings
    the numbers depend on, the weights' provenance and how they were run (``agreement``: an integer
    execution's agreement with LiteRT)."""
    from benchmark.runs.records import environment
    from benchmark.runs.schema import EvaluationRecord

    return EvaluationRecord.of_model(
        task.name,
        cfg,
        split=args.split,
        preset=cfg["preset"],
        dataset=datamodule.dataset_info(),
        settings=settings(task, cfg),
        metrics={k: round(float(v), 4) for k, v in result.metrics.items()},
        images=result.images,
        ci95={k: [round(low, 4), round(high, 4)] for k, (low, high) in result.ci95.items()},
        ci_method=result.as_dict()["ci_method"],
        weights=weights,
        runtime=args.runtime,
        precision=precision,
        litert_agreement=agreement,
        wall_time_s=round(wall_s, 2),
        environment=environment("cpu"),
    )


def print_summary(task, cfg: dict[str, Any], record: EvaluationRecord, runtime: str, arithmetic: str | None) -> None:
    """The metrics with their intervals, the agreement with LiteRT and the settings, on stdout."""
    shown = ", ".join(
        f"{k} {v:.2f} (95% CI {record.ci95[k][0]:.2f}-{record.ci95[k][1]:.2f})" if k in record.ci95 else f"{k} {v:.2f}"
        for k, v in record.metrics.items()
    )
    print(f"{task.name} {cfg['backbone']} width {record.width or 1.0:g} @ {cfg['resolution']}, {record.images} images, "
          f"runtime {runtime} ({record.precision}): {shown}")
    if record.litert_agreement:
        agreement = record.litert_agreement
        kernels = "XNNPACK" if arithmetic == "xnnpack" else "builtin kernels"
        print(f"agreement with LiteRT ({kernels}, same bytes, first {agreement['batches']} batches, "
              f"{agreement['images']} images): raw outputs {agreement['raw_values_equal']:.2f} % equal, "
              f"arg-max {agreement['argmax_equal']:.2f} %")
    if record.settings:
        print("settings: " + ", ".join(f"{k} {v}" for k, v in record.settings.items()))


def settings(task, cfg: dict[str, Any]) -> dict[str, Any]:
    """Evaluation settings a number depends on beyond the weights and preset (detection: post-processing)."""
    defaults = task.defaults()
    found = {key: cfg.get(key) if cfg.get(key) is not None else defaults[key] for key in EVAL_SETTINGS if key in defaults}
    found.update({key: cfg[key] for key in FILE_SETTINGS if cfg.get(key) is not None})
    return found


def _model_and_config(task, args: argparse.Namespace):
    """The model to evaluate, the run config the datamodule reads, and the weights' provenance (through
    ``resolve_model``, as every command that loads a model)."""
    from backbones.errors import UserError
    from benchmark.runs.config import resolve_model
    from tasks.preprocessing import check_preset

    if args.pretrained and not args.backbone:
        raise UserError("--backbone is required with --pretrained")
    given = {
        "data": args.data, "batch_size": args.batch_size, "num_workers": args.num_workers, "on_bad_sample": "error",
        "backbone": args.backbone, "width": args.width, "resolution": args.resolution, "preset": args.preset,
        "weights": args.weights, "pretrained": args.pretrained,
        # The task's evaluation flags (detection: --max-detections 10 as TFLite's SSD op, --nms-iou, ...).
        **{key: getattr(args, key, None) for key in EVAL_SETTINGS},
    }  # fmt: skip
    loaded = resolve_model(task, given, checkpoint=args.checkpoint)
    cfg = dict(loaded.config, preset=check_preset(loaded.config.get("preset"), task.name))
    report = loaded.report
    if report is not None:
        print(f"weights: {report.facts.describe()}", file=sys.stderr)
        if report.postprocess is not None:  # the file's own post-processing (TFLite's SSD op) unless a flag says otherwise
            print(f"post-processing from the file: {', '.join(f'{k} {v}' for k, v in report.postprocess.items())}",
                  file=sys.stderr)
            overridden = sorted(key for key in report.evaluation if given.get(key) is not None)
            if overridden:
                print(f"  overridden by flags: {', '.join('--' + k.replace('_', '-') for k in overridden)}", file=sys.stderr)
    return loaded.model, cfg, loaded.weights
