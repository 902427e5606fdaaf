"""Shared test set-up: tests never write to the user's cache, never reach W&B, and share 2 cores."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator

import pytest
import torch
from requirements_helpers import MARKER as REQUIRES_MARKER
from requirements_helpers import apply_requires_marks


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Generated datasets go to a session temp dir (not ~/.cache); W&B stays offline and quiet.

    Set in ``os.environ`` so subprocesses (``bench ...``, DDP workers) inherit it too.
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("BENCH_CACHE", str(tmp_path_factory.mktemp("bench-cache")))
    patch.setenv("WANDB_MODE", "offline")
    patch.setenv("WANDB_SILENT", "true")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)
    patch.undo()


class CurrentStderr:
    """A stream that writes wherever ``sys.stderr`` points now."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@pytest.fixture(autouse=True)
def logging_outlives_the_test() -> Iterator[None]:
    """A library that adds a ``logging.StreamHandler()`` when it is first imported (Lightning does)
    binds the ``sys.stderr`` of that moment: inside a test, pytest's capture stream, closed when the
    test ends. The next test that logs through it then gets "--- Logging error --- ValueError: I/O
    operation on closed file" in its stderr. Such a handler is pointed at the current stderr instead."""
    threads = torch.get_num_threads()
    yield
    # A runtime's prepare() sets torch's thread count (its contract; bench latency restores it after the
    # run). A test that calls it directly would leave 1 thread to every later test, and NHWC gradients,
    # for one, round differently on 1 thread (tests/test_channels_last.py): the suite's order would matter.
    torch.set_num_threads(threads)
    progress = sys.modules.get("tasks.progress")
    if progress is not None and progress._settings.bar is not None:
        # A bar's refresh thread writes to whatever sys.stderr is, ten times a second, in later tests too.
        progress._settings.bar.stop()
        progress._settings.bar, progress._settings.depth = None, 0
        pytest.fail("the test left a progress bar running (a track() generator not run to its end?)")
    for name in ("stdout", "stderr"):  # a test that leaves one closed would break every later one's output
        if getattr(getattr(sys, name), "closed", False):
            setattr(sys, name, getattr(sys, f"__{name}__"))
            pytest.fail(f"the test left sys.{name} closed (monkeypatch restored a capture stream after capsys closed it?)")
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            stream = handler.__dict__.get("stream")  # an instance's own stream (logging's _StderrHandler reads sys.stderr)
            if getattr(stream, "closed", False):
                handler.stream = CurrentStderr()  # not setStream: it flushes the closed one first


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", REQUIRES_MARKER)
    # A shell's background job (``make test &``, nohup) starts with Ctrl-C ignored, and children inherit
    # an ignored signal: the Ctrl-C tests' ``bench`` would never see theirs. The tests start as from a
    # terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``@pytest.mark.requires(component, why_missing)`` skips, or fails under BENCH_REQUIRE."""
    apply_requires_marks(item)
