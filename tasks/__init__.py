"""Task registry: the names ``bench --task`` accepts."""

from __future__ import annotations

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


from tasks.classification.task import ClassificationTask  # noqa: E402
from tasks.detection.task import DetectionTask  # noqa: E402

register_task(ClassificationTask())
register_task(DetectionTask())
from tasks.segmentation.task import SegmentationTask  # noqa: E402

register_task(SegmentationTask())
