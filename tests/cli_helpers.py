"""``bench`` run in-process, for tests that read its exit code, stdout and stderr."""

from __future__ import annotations

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
