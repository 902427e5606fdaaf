"""``bench`` run in-process, for tests that read its exit code, stdout and stderr."""

from __future__ import annotations

import subprocess

import pytest

from benchmark.cli import main


def bench(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run ``bench`` in-process; argparse errors exit through SystemExit, the rest return a code."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def completed(argv: list[str], capsys: pytest.CaptureFixture) -> subprocess.CompletedProcess:
    """``bench`` in-process, answered as ``subprocess.run`` would: for tests written against a
    subprocess that need no process of their own (a subprocess spends most of its time importing torch)."""
    code, out, err = bench(argv, capsys)
    return subprocess.CompletedProcess(argv, code, out, err)
