"""Task registry: the names ``bench --task`` accepts, each task built the first time it is asked for.

The built-in tasks are named here with the module that defines them, so listing the names or
reading a task's options imports none of them; ``register_task`` adds others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.base import Task

BUILTIN = {
    "classification": "tasks.classification.task:ClassificationTask",
    "detection": "tasks.detection.task:DetectionTask",
    "segmentation": "tasks.segmentation.task:SegmentationTask",
}
_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> None:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task


def list_tasks() -> list[str]:
    return sorted(set(_TASKS) | set(BUILTIN))


def get_task(name: str) -> Task:
    if name not in _TASKS and name in BUILTIN:
        module, _, cls = BUILTIN[name].partition(":")
        register_task(getattr(importlib.import_module(module), cls)())
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    return _TASKS[name]
