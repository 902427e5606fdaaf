"""mkdocs hooks: pages that are generated at build time, so the site cannot drift from the code.

- ``reference/cli.md`` is rendered from ``benchmark.cli.build_parser``: each subcommand's ``--help``,
  once per task where a task adds flags of its own (``--head``, ``--output-stride``, ...).
- ``leaderboards/`` is the committed output of ``bench leaderboard`` (markdown pages, CSVs, plots, the
  records they link to and the interactive HTML site), copied in as it is; ``.ci/run`` checks that
  output against the records with ``bench leaderboard --check``.
- ``notes/changelog.md`` is the top-level ``CHANGELOG.md``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
LEADERBOARDS = ROOT / "leaderboards"
# Generated leaderboard files the docs carry, relative to leaderboards/ (records/ holds the provenance).
LEADERBOARD_GLOBS = ("*.md", "*.csv", "plots/*.png", "records/*.json", "records/*.log", "site/*")
HELP_WIDTH = "100"  # argparse wraps at $COLUMNS: fixed, so the page is the same on every machine


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``{name: parser}`` of the ``bench`` subcommands, in the order ``bench --help`` lists them."""
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise RuntimeError("bench has no subcommands")


def cli_reference() -> str:
    """Markdown of ``bench --help`` and every subcommand's help, task-specific variants apart."""
    os.environ["COLUMNS"] = HELP_WIDTH
    from benchmark.cli import build_parser
    from tasks.facts import TASK_NAMES

    parsers = {task: build_parser(task) for task in TASK_NAMES}
    first = TASK_NAMES[0]
    lines = [
        "# CLI reference",
        "",
        "Generated at build time from the argparse parsers (`benchmark.cli.build_parser`): what",
        "`bench COMMAND --help` prints. Where `--task` changes a command's flags, each task's variant follows.",
        "",
        "```text",
        parsers[first].format_help().rstrip(),
        "```",
    ]
    for name in subcommands(parsers[first]):
        lines += ["", f"## bench {name}", ""]
        helps = {task: subcommands(parsers[task])[name].format_help().rstrip() for task in TASK_NAMES}
        if len(set(helps.values())) == 1:
            lines += ["```text", helps[first], "```"]
            continue
        for task, text in helps.items():
            lines += [f"### bench {name} --task {task}", "", "```text", text, "```", ""]
    return "\n".join(lines) + "\n"


def on_files(files: Files, config) -> Files:
    """Add the generated pages and the leaderboards' files to the build."""
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    # CHANGELOG.md links into docs/ from the top of the repository; the page sits in docs/notes/.
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8").replace("](docs/notes/", "](").replace("](docs/", "](../")
    files.append(File.generated(config, "notes/changelog.md", content=changelog))
    for pattern in LEADERBOARD_GLOBS:
        for path in sorted(LEADERBOARDS.glob(pattern)):
            relative = path.relative_to(LEADERBOARDS).as_posix()
            files.append(File.generated(config, f"leaderboards/{relative}", abs_src_path=str(path)))
    return files
