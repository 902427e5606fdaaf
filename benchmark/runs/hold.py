"""A run that waits at a known step, so a test can interrupt it there (fault injection, off by default).

Killing a training run "somewhere after its first checkpoint" is a race on a loaded machine: the
signal has to land between two steps a fraction of a second apart, through the scheduler's daemons.
``BENCH_HOLD_AT_STEP="N:/abs/run/folder"`` (several entries separated by ``;``) makes the run whose
output folder is that path wait at the start of step N+1, after the step-N checkpoint was written:
it writes ``held-at-step`` in its folder and waits until ``release-hold`` appears there or SIGTERM
arrives (``scancel``, pre-emption), then goes on. A run that resumed from a checkpoint never waits,
so a resubmitted cell runs through. Unset, nothing is added to the trainer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from backbones.errors import UserError

ENV = "BENCH_HOLD_AT_STEP"
MARKER = "held-at-step"
RELEASE = "release-hold"
POLL_S = 0.02
# Long enough for any test to act, short enough that a forgotten hold cannot stall a job for good.
SAFETY_TIMEOUT_S = 900.0


class HoldAtStep(Callback):
    """Wait at the start of the batch after optimizer step ``step`` until released or SIGTERM."""

    def __init__(self, step: int, folder: Path, timeout_s: float = SAFETY_TIMEOUT_S) -> None:
        self.step, self.folder, self.timeout_s = step, Path(folder), timeout_s
        self.held = False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.held or trainer.global_step != self.step:
            return
        self.held = True
        (self.folder / MARKER).write_text(f"{self.step}\n")
        deadline = time.monotonic() + self.timeout_s
        while not (self.folder / RELEASE).exists() and not trainer.received_sigterm:
            if time.monotonic() > deadline:
                print(f"{ENV}: no {RELEASE} in {self.folder} after {self.timeout_s:.0f} s; going on", flush=True)
                return
            time.sleep(POLL_S)


def parse_holds(text: str) -> dict[Path, int]:
    """``"N:PATH;N:PATH"`` -> {absolute run folder: step}; a malformed entry is a one-line error."""
    holds = {}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        step, sep, folder = entry.partition(":")
        if not sep or not step.isdigit() or not os.path.isabs(folder):
            raise UserError(f"{ENV}: {entry!r} is not STEP:/absolute/run/folder")
        holds[Path(folder)] = int(step)
    return holds


def hold_from_env(output: Path, resume_from: Path | None) -> list[Callback]:
    """The hold for the run writing to ``output``, if ``BENCH_HOLD_AT_STEP`` names it and it starts afresh."""
    holds = parse_holds(os.environ.get(ENV, ""))
    step = holds.get(Path(os.path.abspath(output)))
    if step is None or resume_from is not None:
        return []
    return [HoldAtStep(step, output)]
