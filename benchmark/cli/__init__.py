"""The ``bench`` command line: parser wiring and ``main``; one module per subcommand, listed in COMMANDS."""

from __future__ import annotations

import argparse
import os
import sys

from backbones.errors import UserError
from benchmark.cli import (
    evaluate,
    export,
    latency,
    leaderboard,
    listing,
    memory,
    predict,
    profile,
    run,
    sweep,
)
from benchmark.cli.arguments import add_model_arguments, add_task_argument

COMMANDS = [listing, profile, run, evaluate, predict, sweep, leaderboard, latency, export, memory]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(task_name: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bench", description="Multi-task benchmark suite for mobile vision backbones")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in COMMANDS:
        command.add_parser(sub, task_name)
    return parser


def user_message(error: UserError) -> str:
    """The one line to print: a UserError raised in a DataLoader worker comes back wrapped in the
    worker's traceback text, whose last line holds the original message."""
    text = str(error).strip()
    last = text.splitlines()[-1] if text else ""
    return last.split("UserError: ", 1)[-1] if "Original Traceback" in text else text


def main(argv: list[str] | None = None) -> int:
    # albumentations asks PyPI for its newest version at import and warns when offline: a line
    # before a failed command's one error line, and a network call nobody asked for.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="classification")
    known, _ = pre.parse_known_args(argv)
    args = build_parser(known.task).parse_args(argv)
    from benchmark.runs.records import set_command_line

    set_command_line(["bench", *argv])

    from tasks.progress import configure

    configure(quiet=getattr(args, "quiet", False), progress=getattr(args, "progress", False))
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"bench {args.command}: error: {user_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        # A command that cleaned up after Ctrl-C says what it did (the device folder removed, ...).
        said = f": {interrupt}" if str(interrupt) else ""
        print(f"bench {args.command}: interrupted{said}", file=sys.stderr)
        return 130



__all__ = ["COMMANDS", "add_model_arguments", "add_task_argument", "build_parser", "main", "user_message"]
