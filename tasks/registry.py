"""Task registry: the names ``bench --task`` accepts (filled by ``tasks/__init__.py``).

Its own module so that code inside ``tasks`` (the model factory) can look a task up by name
without importing every task package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.base import Task

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> None:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")
    return _TASKS[name]
