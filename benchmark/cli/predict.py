"""``bench predict``: draw a trained model's predictions on image files."""

from __future__ import annotations

import argparse

from benchmark.cli.arguments import add_task_argument, config_values


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser("predict", help="run a checkpoint on images and write pictures")
    add_task_argument(parser, task_name)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint written by bench run")
    source.add_argument("--weights", help="official TFLite checkpoint (.tflite), imported into the suite's model")
    parser.add_argument("--out", required=True, help="folder for the pictures")
    parser.add_argument("images", nargs="+", help="image files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = config_values(args, ("checkpoint", "weights", "out", "images"))
    from tasks import get_task

    written = get_task(args.task).predict(args.checkpoint or args.weights, args.images, args.out, given)
    for path in written:
        print(path)
    return 0
