"""Progress of the loops a user waits on, on stderr: the count, the rate and the time left.

One setting for the process, made by the command line (``configure``): by default a bar (rich)
is drawn while stderr is a terminal and nothing is written otherwise; ``--progress`` asks for it
anywhere, and where stderr is no terminal (CI, SLURM logs) each stage then writes one line when it
ends instead of a redrawn bar; ``--quiet`` writes nothing. Only stderr is ever written, and the bar
is erased when its stage ends, so a command's stdout (``--json`` included) is what it was.

Loops say what they do with ``stage`` (advance it by hand) or ``track`` (wrap an iterable); a
stage inside another shows as a second bar under the first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")


@dataclass
class _Settings:
    mode: str = "auto"
    bar: Progress | None = None  # the live bar, while a stage draws one
    depth: int = 0  # stages open on it


_settings = _Settings()


def configure(*, quiet: bool = False, progress: bool = False) -> str:
    """Set the process's progress from the ``--quiet`` / ``--progress`` flags; returns the mode:
    "off" (quiet), "bar" or "lines" (asked for: a bar on a terminal, else a line per stage), or
    "auto" (neither: a bar on a terminal, else nothing)."""
    if quiet and progress:
        raise ValueError("quiet and progress exclude each other")
    if quiet:
        _settings.mode = "off"
    elif progress:
        _settings.mode = "bar" if sys.stderr.isatty() else "lines"
    else:
        _settings.mode = "auto"
    return _settings.mode


def mode() -> str:
    """What a stage does now: "bar", "lines" or "off" ("auto" resolved against stderr)."""
    if _settings.mode == "auto":
        return "bar" if sys.stderr.isatty() else "off"
    return _settings.mode


@dataclass
class Stage:
    """One stage of work: ``advance(n)`` as it goes."""

    description: str
    total: int | None
    unit: str
    done: int = 0
    started: float = field(default_factory=time.perf_counter)
    _advance: Callable[[int], None] | None = None

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self._advance is not None:
            self._advance(amount)

    def summary(self) -> str:
        """``evaluate: 456 images in 38.2 s (11.9 images/s)``, or ``export tflite: 12.5 s`` for a
        stage that counts nothing: the line a stage writes in logs."""
        elapsed = time.perf_counter() - self.started
        if self.total is None and not self.done:
            return f"{self.description}: {elapsed:.1f} s"
        rate = f" ({self.done / elapsed:.1f} {self.unit}/s)" if elapsed > 0 and self.done else ""
        of = f" of {self.total}" if self.total is not None and self.total != self.done else ""
        return f"{self.description}: {self.done}{of} {self.unit} in {elapsed:.1f} s{rate}"


@contextmanager
def stage(description: str, total: int | None = None, unit: str = "items") -> Iterator[Stage]:
    """A stage of ``total`` ``unit`` (None: unknown); shown while it runs as the mode says."""
    current = Stage(description, total, unit)
    shown = mode()
    if shown == "off":
        yield current
        return
    if shown == "lines":
        try:
            yield current
        finally:
            print(current.summary() if sys.exc_info()[0] is None else f"{current.summary()}, stopped",
                  file=sys.stderr, flush=True)
        return
    with _bar() as bar:
        task = bar.add_task(description, total=total, unit=unit)
        current._advance = lambda amount: bar.advance(task, amount)
        try:
            yield current
        finally:
            bar.refresh()  # its last state, then gone (the bar is transient)
            bar.remove_task(task)


def track(iterable: Iterable[T], description: str, *, total: int | None = None, unit: str = "items",
          count: Callable[[T], int] | None = None) -> Iterator[T]:
    """The items of ``iterable`` inside a stage, advanced by ``count(item)`` (default 1) after each;
    ``total`` defaults to ``len(iterable)`` where it has one."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with stage(description, total, unit) as current:
        for item in iterable:
            yield item
            current.advance(count(item) if count is not None else 1)


class _RateColumn(ProgressColumn):
    """``11.9 images/s`` (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {task.fields.get('unit', '')}/s" if speed else "", style="progress.data.speed")


@contextmanager
def _bar() -> Iterator[Progress]:
    """The live bar on stderr, shared by nested stages (rich draws one live display at a time)."""
    if _settings.bar is None:
        _settings.bar = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"), _RateColumn(), TimeElapsedColumn(), TextColumn("elapsed"),
            TimeRemainingColumn(), TextColumn("left"), console=Console(stderr=True), transient=True,
            # Neither stream is swapped for rich's proxy: stdout stays the command's (its --json), and a
            # bar left open by an abandoned generator cannot later "restore" a stderr that was closed.
            redirect_stdout=False, redirect_stderr=False,
        )
        _settings.bar.start()
    _settings.depth += 1
    try:
        yield _settings.bar
    finally:
        _settings.depth -= 1
        if _settings.depth == 0:
            _settings.bar.stop()
            _settings.bar = None


def tracked_datamodule(datamodule: Any, description: str) -> Any:
    """``datamodule`` whose ``val_dataloader()`` counts its images on the display (every task's
    evaluator iterates it); everything else is the datamodule's own."""
    return _TrackedData(datamodule, description)


class _TrackedData:
    def __init__(self, datamodule: Any, description: str) -> None:
        self._datamodule = datamodule
        self._description = description

    def __getattr__(self, name: str) -> Any:
        return getattr(self._datamodule, name)

    def val_dataloader(self) -> Iterator[Any]:
        loader = self._datamodule.val_dataloader()
        total = len(loader.dataset) if hasattr(loader, "dataset") else None
        return track(loader, self._description, total=total, unit="images", count=batch_images)


def batch_images(batch: Any) -> int:
    """The number of images in a batch of any task's loader: ``(images, ...)`` or ``{"images": ...}``
    (0 for a batch the collate function dropped)."""
    if batch is None:
        return 0
    images = batch["images"] if isinstance(batch, dict) else batch[0]
    return len(images)
