"""A training DataLoader that a killed run can resume mid-epoch exactly where it stopped.

Lightning restores the model, optimizer, scheduler and loop counters from a checkpoint, but a plain
DataLoader restarts its epoch with a fresh shuffle and fresh augmentation draws, so a resumed run
trains on other batches than the run it continues. Here:

- the order of an epoch depends only on (seed, epoch) (``DistributedSampler``'s permutation, which
  also splits it across DDP ranks, so Lightning keeps it as it is);
- every sample's augmentation is drawn from its own seed, derived from (seed, epoch, index), so
  it does not depend on which process (a DataLoader worker, the main one) or history draws it;
- the loader is *stateful* (``state_dict``/``load_state_dict``, which Lightning saves in every
  checkpoint and restores before it iterates): it records the epoch and how many batches of it were
  delivered, and a restored loader skips those batches.

``ResumeState`` saves the loader's position and the global RNG states (dropout draws from torch's) in
every checkpoint and puts them back when training starts. (Lightning saves a stateful loader's state
too, but restores it only if the loader is built after the checkpoint is read; ``BenchModule`` builds
it earlier, in ``configure_optimizers``, to count the schedule's steps.) With them a resumed run
repeats the uninterrupted one: tests/test_reliability.py checks the final weights are equal.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch (independent streams via SeedSequence)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SeededSampler(DistributedSampler):
    """``DistributedSampler`` (one rank outside DDP) yielding ``(index, augmentation seed)`` and able
    to skip the first ``skip`` samples of its next epoch (the part a resumed run already trained on)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        super().__init__(dataset, num_replicas=None if distributed else 1, rank=None if distributed else 0,
                         shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        skip, self.skip = self.skip, 0
        indices = list(super().__iter__())[skip:]
        return iter([(index, sample_seed(self.seed, self.epoch, index)) for index in indices])


class SeededSamples(Dataset):
    """A dataset indexed by ``(index, seed)``: seeds the dataset's albumentations pipeline, then loads."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        transform = getattr(self.dataset, "transform", None)
        if hasattr(transform, "set_random_seed"):
            transform.set_random_seed(seed)
        return self.dataset[index]


class ResumableLoader(DataLoader):
    """The training loader: shuffled by ``SeededSampler``, its position saved in checkpoints."""

    def __init__(self, dataset: Dataset, *, seed: int, **kwargs: Any) -> None:
        samples = SeededSamples(dataset)
        # Its own generator for the workers' base seed, which DataLoader otherwise draws from torch's
        # global RNG when an epoch's iterator starts (a resumed run starts its iterator at another point).
        generator = torch.Generator().manual_seed(seed)
        super().__init__(samples, sampler=SeededSampler(samples, seed), generator=generator, **kwargs)
        self.delivered = 0  # batches of the current epoch handed out
        self._resume_at = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self.delivered, self._resume_at = self._resume_at, 0
        self.sampler.skip = self.delivered * self.batch_size
        for batch in super().__iter__():
            self.delivered += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self.delivered}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batches = int(state["epoch"]), int(state["batches"])
        if batches >= len(self):  # saved at the end of an epoch: the next one starts from its beginning
            epoch, batches = epoch + 1, 0
        self.sampler.set_epoch(epoch)
        self._resume_at = batches


def rng_states() -> dict[str, Any]:
    """torch's, numpy's and Python's global RNG states, as tensors and plain lists (``weights_only``-safe)."""
    kind, keys, *rest = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "numpy": [kind, keys.tolist(), *rest],
            "python": [version, list(internal), gauss]}


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, *rest = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


class ResumeState(L.Callback):
    """Saves the training loader's position and the global RNG states in checkpoints; restores them
    when training starts (the loader's iterator does not run before its first batch)."""

    KEY = "bench_resume_state"

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        loader = trainer.train_dataloader
        checkpoint[self.KEY] = {
            "loader": loader.state_dict() if isinstance(loader, ResumableLoader) else None,
            "rng": rng_states(),
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.pending = checkpoint.get(self.KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self.pending = self.pending, None
        if not state:
            return
        loader = trainer.train_dataloader
        if state["loader"] is not None and isinstance(loader, ResumableLoader):
            loader.load_state_dict(state["loader"])
        set_rng_states(state["rng"])
