"""Flags several commands share, and the split of a parsed command line into command-only flags and
config values (what ``resolve_config`` takes), so the namespace is read, never edited."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

# Parser bookkeeping and the flags that are not config keys in every command.
NOT_CONFIG = ("command", "func", "task", "config", "quiet", "progress")


def add_task_argument(parser: argparse.ArgumentParser, task_name: str) -> None:
    """``--task`` plus that task's own flags, generated from its options dataclass (the task is read
    before the rest of the line). Imports no model code: ``--help`` answers at once."""
    from tasks.options import OPTIONS, options_class

    parser.add_argument("--task", default="classification", choices=sorted(OPTIONS), help="task (default classification)")
    if task_name in OPTIONS:
        add_option_flags(parser, options_class(task_name))


def add_option_flags(parser: argparse.ArgumentParser, options: type) -> None:
    """One flag per field of a task's options dataclass: its help, choices and type from the field.
    Every default is None, so a recipe fills what the command line leaves out; fields marked
    ``flag=False`` (settings only a file or a recipe states) get none."""
    for field in dataclasses.fields(options):
        meta = field.metadata
        if not meta.get("flag", True):
            continue
        flag = "--" + field.name.replace("_", "-")
        if meta.get("boolean"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=meta["help"])
        else:
            parser.add_argument(flag, type=meta.get("type") or str, choices=meta.get("choices"), default=None,
                                help=meta["help"])


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that choose the network (shared by profile, run and latency)."""
    parser.add_argument("--backbone", default=None, help="registered backbone name (see `bench list`)")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (MobileNets)")
    parser.add_argument("--expansion", type=float, default=None, help="MobileNetV2 expansion factor t")
    parser.add_argument("--output-stride", type=int, default=None, help="8, 16 or 32 (dilation after it)")
    parser.add_argument("--resolution", type=int, default=None, help="input side in pixels")
    parser.add_argument("--num-classes", type=int, default=None, help="number of classes")
    parser.add_argument("--weights", default=None,
                        help="official TFLite checkpoint (.tflite): its weights, and backbone/width/size/classes/preset defaults")
    parser.add_argument("--config", default=None, help="recipe YAML file; flags override it")


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` / ``--progress``: the progress display of long work on stderr (``tasks.progress``)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="no progress display")
    group.add_argument("--progress", action="store_true",
                       help="progress even when stderr is not a terminal: one line per finished stage (logs, CI)")


def config_values(args: argparse.Namespace, command_flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config values the user gave (``None``: not given), without the command's own flags."""
    from benchmark.runs.limits import check_resolution, check_width

    skip = set(NOT_CONFIG) | set(command_flags)
    given = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    check_width(given.get("width"))  # a bad size is one line before any model code is imported
    if "resolution" in given:
        check_resolution(given["resolution"])
    return given


def command_values(args: argparse.Namespace, command_flags: tuple[str, ...]) -> dict[str, Any]:
    """The command's own flags (not config keys)."""
    return {name: getattr(args, name) for name in command_flags}
