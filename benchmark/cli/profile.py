"""``bench profile``: params and multiply-adds of a task's model."""

from __future__ import annotations

import argparse
import json

from benchmark.config import add_model_arguments, resolve_config


def add_parser(sub, task_name: str) -> None:
    from benchmark.cli import add_task_argument

    parser = sub.add_parser("profile", help="count params and multiply-adds")
    add_task_argument(parser, task_name)
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tasks import get_task

    task = get_task(args.task)
    as_json = args.json
    del args.json
    cfg = resolve_config(task, args, shipped_recipes=False)
    model = task.build_model(cfg)
    result = {
        "task": task.name,
        "backbone": cfg["backbone"],
        "resolution": cfg["resolution"],
        "num_classes": cfg["num_classes"],
        **{k: cfg[k] for k in ("width", "expansion", "output_stride") if cfg.get(k) is not None},
        **task.profile(model, cfg),
    }
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return 0
    for key, value in result.items():
        if isinstance(value, int) and not isinstance(value, bool) and (key.endswith("params") or key.endswith("madds")):
            value = f"{value:,} ({value / 1e6:.2f}M)"
        print(f"{key:>24}: {value}")
    return 0
