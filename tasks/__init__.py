"""The suite's tasks, registered by name (the names ``bench --task`` accepts)."""

from __future__ import annotations

from tasks.base import Task
from tasks.classification.task import ClassificationTask
from tasks.detection.task import DetectionTask
from tasks.registry import get_task, list_tasks, register_task
from tasks.segmentation.task import SegmentationTask

register_task(ClassificationTask())
register_task(DetectionTask())
register_task(SegmentationTask())

__all__ = ["Task", "get_task", "list_tasks", "register_task"]
