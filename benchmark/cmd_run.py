"""``bench run``: train and evaluate a task on a backbone, write a result record."""

from __future__ import annotations

import argparse


def add_parser(sub, task_name: str) -> None:
    from benchmark.cli import add_task_argument
    from benchmark.config import add_model_arguments

    parser = sub.add_parser("run", help="train + evaluate, write result.json")
    add_task_argument(parser, task_name)
    add_model_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError
