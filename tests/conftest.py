"""Shared test set-up: tests never write to the user's cache, never reach W&B, and share 2 cores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(component, missing): skip (or fail under BENCH_REQUIRE) when missing is a reason"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires("sshd", why)``: a test whose component is missing skips, or fails when
    BENCH_REQUIRE names it (tests/requirements_helpers.py)."""
    from requirements_helpers import require

    for mark in item.iter_markers("requires"):
        component, missing = mark.args
        if missing:
            require(component, missing)
