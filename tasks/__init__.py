"""The suite's tasks, registered by name (the names ``bench --task`` accepts).

Imported lazily: ``get_task`` imports a task's module the first time it is asked for, so code that
only needs the names or a task's options (the command line) loads no model code and no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.registry import get_task, list_tasks, register_task

if TYPE_CHECKING:
    from tasks.base import Task


def __getattr__(name: str) -> Any:
    if name == "Task":
        from tasks.base import Task

        return Task
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")


__all__ = ["Task", "get_task", "list_tasks", "register_task"]
