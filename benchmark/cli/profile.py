"""``bench profile``: params and multiply-adds of a task's model."""

from __future__ import annotations

import argparse
import json

from benchmark.cli.arguments import add_model_arguments, add_task_argument, config_values


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser("profile", help="count params and multiply-adds")
    add_task_argument(parser, task_name)
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


COMMAND_FLAGS = ("json",)


def run(args: argparse.Namespace) -> int:
    given = config_values(args, COMMAND_FLAGS)  # checked before the heavy imports
    from benchmark.runs.config import resolve_config
    from benchmark.runs.profile import profile_model
    from tasks import get_task

    task = get_task(args.task)
    cfg = resolve_config(task, given, recipe=args.config, shipped_recipes=False)
    result = profile_model(task, cfg)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    for key, value in result.items():
        if isinstance(value, int) and not isinstance(value, bool) and (key.endswith("params") or key.endswith("madds")):
            value = f"{value:,} ({value / 1e6:.2f}M)"
        print(f"{key:>24}: {value}")
    return 0
