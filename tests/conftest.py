"""Shared test set-up: tests never write to the user's cache, never reach W&B, and share 2 cores."""

from __future__ import annotations

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", REQUIRES_MARKER)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``@pytest.mark.requires(component, why_missing)`` skips, or fails under BENCH_REQUIRE."""
    apply_requires_marks(item)
