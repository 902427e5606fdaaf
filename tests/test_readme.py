"""The README is the front door: short, narrow, no history, and its Python example runs as printed.

The example needs the real ImageNet slice and an official file (``BENCH_REALDATA``); it is run in a
fresh interpreter exactly as a reader would paste it, and its printed numbers are checked against the
committed evaluation record of the same file on the same images.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.runs.records import REPO_ROOT

README = REPO_ROOT / "README.md"
COMMIT_HASH = re.compile(r"\b[0-9a-f]{7,40}\b")


def text_outside_code(text: str) -> list[str]:
    """The README's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_is_short_narrow_and_without_history() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    prose = text_outside_code(text)
    assert max(len(line) for line in prose) <= 120
    assert [line for line in prose if COMMIT_HASH.search(line)] == []
    # Every bench subcommand is listed once in the command list.
    from benchmark.cli import build_parser

    parser = build_parser("classification")
    names = next(a for a in parser._actions if a.choices and "run" in a.choices).choices
    listed = re.search(r"## The `bench` commands\n\n```text\n(.*?)```", text, re.S).group(1)
    assert sorted(line.split()[1] for line in listed.splitlines()) == sorted(names)


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets
    missing = [t for t in targets if not t.startswith("http") and not (REPO_ROOT / t).exists()]
    assert missing == []


@pytest.mark.skipif(not os.environ.get("BENCH_REALDATA"), reason="BENCH_REALDATA is not set (real images, official files)")
def test_python_example_runs_as_printed(tmp_path: Path) -> None:
    (block,) = python_blocks(README.read_text(encoding="utf-8"))
    script = tmp_path / "example.py"
    script.write_text(block)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "3.50M params, 301M MAdds"
    # The committed record of this file on this slice (evaluation-classification-mobilenet-v1-0.25-128-...).
    assert lines[1] == "top-1 53.29 % on 456 images (95 % CI 48.7-57.7)"
    match = re.fullmatch(r"p50 (\d+\.\d\d) ms over (\d+) runs", lines[2])
    # At least 50 runs unless the tier's 20 s cap stopped a slow (loaded) machine first.
    assert match and float(match.group(1)) > 0 and int(match.group(2)) >= 1
