"""The ``bench`` command line: one module per subcommand, listed in COMMANDS."""

from __future__ import annotations

import argparse
import sys

from benchmark import (
    cmd_eval,
    cmd_latency,
    cmd_leaderboard,
    cmd_list,
    cmd_memory,
    cmd_predict,
    cmd_profile,
    cmd_run,
    cmd_sweep,
)
from backbones.errors import UserError

COMMANDS = [cmd_list, cmd_profile, cmd_run, cmd_eval, cmd_predict, cmd_sweep, cmd_leaderboard, cmd_latency, cmd_memory]


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


def add_task_argument(parser: argparse.ArgumentParser, task_name: str) -> None:
    """``--task`` plus that task's own flags (the task is read before the rest of the line)."""
    from tasks import get_task, list_tasks

    parser.add_argument("--task", default="classification", choices=list_tasks(), help="task (default classification)")
    if task_name in list_tasks():
        get_task(task_name).add_model_arguments(parser)


def user_message(error: UserError) -> str:
    """The one line to print: a UserError raised in a DataLoader worker comes back wrapped in the
    worker's traceback text, whose last line holds the original message."""
    text = str(error).strip()
    last = text.splitlines()[-1] if text else ""
    return last.split("UserError: ", 1)[-1] if "Original Traceback" in text else text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default="classification")
    known, _ = pre.parse_known_args(argv)
    args = build_parser(known.task).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"bench {args.command}: error: {user_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
