"""Params and multiply-adds of a task's model for a resolved config: what ``bench profile`` prints,
what sweeps and ``bench leaderboard --recount`` store as ``profile`` records."""

from __future__ import annotations

from typing import Any

from tasks.base import Task
from tasks.loading import load

# Model options echoed in the result when the config sets them.
SHAPE_OPTIONS = ("width", "expansion", "output_stride")


def profile_model(task: Task, cfg: dict[str, Any]) -> dict[str, Any]:
    """Build ``task``'s model for ``cfg`` (resolved by ``resolve_config``) and count it."""
    model = load(task, cfg).model
    return {
        "task": task.name,
        "backbone": cfg["backbone"],
        "resolution": cfg["resolution"],
        "num_classes": cfg["num_classes"],
        **{k: cfg[k] for k in SHAPE_OPTIONS if cfg.get(k) is not None},
        **task.profile(model, cfg),
    }
