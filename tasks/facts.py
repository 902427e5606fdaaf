"""Per-task facts in one table: the headline metric, the accuracy-gate target, titles, datasets.

``Task`` reads its metric here, and the benchmark layer (records store, latency gate, leaderboards,
sweeps) reads the same rows, so a fact is written once. Kept apart from the task classes because
the store validates records of tasks this checkout may not register.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskFacts:
    name: str
    title: str
    # Headline metric: a key of a result record's ``metrics`` (percent); it picks the best checkpoint.
    metric: str
    metric_label: str
    # MLPerf-style accuracy gate: the fraction of the fp32 metric a runtime must keep.
    gate_target: float
    # Where the first output holds class scores: logits N x K (top-1 agreement), N x K x H x W (pixel
    # label agreement), N x anchors x (K + 1) (per-anchor top class agreement, SSD's raw outputs).
    class_dim: int
    # The dataset the reported (paper) numbers of the task are on.
    reported_dataset: str


TASK_FACTS: dict[str, TaskFacts] = {
    facts.name: facts
    for facts in (
        TaskFacts("classification", "Classification", "top1", "top-1 (%)", 0.99, 1, "ImageNet"),
        TaskFacts("detection", "Detection", "map", "mAP (%)", 0.95, -1, "COCO"),
        TaskFacts("segmentation", "Segmentation", "miou", "mIoU (%)", 0.97, 1, "PASCAL VOC 2012"),
    )
}
# The suite's tasks, in page and sweep order.
TASK_NAMES: tuple[str, ...] = tuple(TASK_FACTS)
