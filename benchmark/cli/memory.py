"""``bench memory``: the MobileNetV2 paper's Table 3 (largest tensor to materialize, 16-bit)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser("memory", help="V2 paper Table 3: max memory of materialized tensors (mnv1, mnv2)")
    parser.add_argument("--backbone", default="mnv1,mnv2", help="comma-separated: mnv1, mnv2 (default both)")
    parser.add_argument("--width", type=float, default=None, help="width multiplier")
    parser.add_argument("--resolution", type=int, default=224, help="input side in pixels (default 224)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per backbone")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.runs.limits import check_resolution, check_width

    check_resolution(args.resolution)
    check_width(args.width)
    from backbones import UnknownBackboneError, create_backbone, get_entry
    from backbones.errors import UserError
    from benchmark.memory.table3 import format_table3, table3

    tables = []
    for name in (n.strip() for n in args.backbone.split(",") if n.strip()):
        try:
            entry = get_entry(name)
        except UnknownBackboneError as error:
            raise UserError(f"--backbone: {error}") from None
        options = {"width": args.width} if args.width is not None else {}
        tables.append(table3(create_backbone(entry.name, **options), entry.name, args.resolution))
    if not tables:
        raise UserError("--backbone: give at least one backbone")
    if args.json:
        print(json.dumps([asdict(t) for t in tables], sort_keys=True))
    else:
        print(format_table3(tables))
    return 0
