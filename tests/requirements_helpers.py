"""Real components some tests start (sshd, a Slurm cluster, Chromium, adbd): skip where missing, or fail.

A laptop without Slurm skips those tests with the reason. CI must not shrink silently when apt could
not install a part, so ``BENCH_REQUIRE=all`` (or a comma list such as ``slurm,sshd``) turns the skip
into a failure. Call ``require`` where the component turns out to be missing (a fixture, a test), or
mark a test ``@pytest.mark.requires(component, why_missing_or_None)`` (conftest.py applies the mark).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

ENV = "BENCH_REQUIRE"
COMPONENTS = ("sshd", "slurm", "chromium", "adbd")


def required() -> set[str]:
    """The components ``BENCH_REQUIRE`` names (``all``: every one); an unknown name is an error."""
    names = {name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()}
    if "all" in names:
        return set(COMPONENTS)
    unknown = sorted(names - set(COMPONENTS))
    if unknown:
        raise pytest.UsageError(f"{ENV}: unknown component(s) {', '.join(unknown)}; "
                                f"choose from all, {', '.join(COMPONENTS)}")
    return names


def require(component: str, reason: str) -> NoReturn:
    """``component`` is missing here: skip with ``reason``, or fail when ``BENCH_REQUIRE`` names it."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; one of {', '.join(COMPONENTS)}")
    if component in required():
        pytest.fail(f"{component} is required ({ENV}={os.environ[ENV]}) but missing: {reason}", pytrace=False)
    pytest.skip(reason)


MARKER = "requires(component, missing): skip (or fail under BENCH_REQUIRE) when missing is a reason"


def apply_requires_marks(item: pytest.Item) -> None:
    """conftest.py's setup hook: ``@pytest.mark.requires("sshd", why)`` with a reason calls ``require``."""
    for mark in item.iter_markers("requires"):
        component, missing = mark.args
        if missing:
            require(component, missing)
