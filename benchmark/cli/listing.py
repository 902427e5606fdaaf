"""``bench list``: the registered backbones, tasks and runtimes (module named so it does not shadow ``list``)."""

from __future__ import annotations

import argparse


def add_parser(sub, task_name: str) -> None:
    parser = sub.add_parser("list", help="list backbones, tasks and runtimes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from backbones import get_entry, list_backbones, list_prefixes
    from tasks.facts import TASK_FACTS

    print("backbones:")
    for name in list_backbones():
        entry = get_entry(name)
        aliases = f" (aliases: {', '.join(entry.aliases)})" if entry.aliases else ""
        pretrained = f"; pretrained: {', '.join(entry.pretrained)}" if entry.pretrained else ""
        print(f"  {name:<20} {entry.description}{aliases}; options: {', '.join(entry.options)}{pretrained}")
    for prefix in list_prefixes():
        print(f"  {prefix.prefix + 'NAME':<20} {prefix.description}; options: {', '.join(prefix.options)}; tested families:")
        for line in prefix.families():
            print(f"      {line}")
    print("tasks:")
    for name, facts in sorted(TASK_FACTS.items()):
        size = facts.default_resolution
        print(f"  {name:<20} default {size}x{size}, {facts.default_num_classes} classes")
    try:
        from benchmark.latency.runtimes import RUNTIMES
    except ImportError:
        return 0
    print("runtimes:")
    for name, runtime in RUNTIMES.items():
        print(f"  {name:<20} {runtime.description}")
    return 0
