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
    # Where the first output holds class scores, for label agreement with eager: logits N x K (top-1
    # agreement), N x K x H x W (pixel label agreement); None: no agreement (detection is judged on
    # its COCO mAP alone: SSD's per-anchor arg-max says nothing about the boxes that survive NMS).
    class_dim: int | None
    # The dataset the reported (paper) numbers of the task are on.
    reported_dataset: str
    # Label agreement with eager (percent) a runtime must also reach; None: not part of the gate.
    agreement_target: float | None = None
    # The gate judges only against a reference that means something: eager's metric must reach this
    # floor (percent) and, where the task has a chance level, twice chance (``weak_reference``).
    reference_floor: float = 1.0
    # The published model's input side and class count (the defaults of profile, latency and export).
    default_resolution: int = 224
    default_num_classes: int = 1000


def chance_level(task: str, num_classes: int) -> float:
    """The metric (percent) of guessing: top-1 of a uniform guess over ``num_classes``; segmentation
    likewise per pixel (an upper bound on a random labelling's mIoU); detection: 0 (a guess finds no box)."""
    if task in ("classification", "segmentation") and num_classes > 0:
        return 100.0 / num_classes
    return 0.0


def weak_reference(task: str, reference: float, num_classes: int) -> str | None:
    """Why eager's metric is too weak to judge a runtime against (an untrained or embedded model near
    chance: a ratio of two noise levels means nothing), or None when it can judge."""
    facts = TASK_FACTS.get(task)
    floor = facts.reference_floor if facts else 1.0
    need = max(floor, 2.0 * chance_level(task, num_classes))
    if reference < need:
        return f"reference {reference:.2f} below {need:.2f} (max of floor {floor:g} and 2x chance)"
    return None


TASK_FACTS: dict[str, TaskFacts] = {
    facts.name: facts
    for facts in (
        TaskFacts("classification", "Classification", "top1", "top-1 (%)", 0.99, 1, "ImageNet",
                  agreement_target=95.0, reference_floor=1.0, default_resolution=224, default_num_classes=1000),
        # SSDLite's input (V2 paper, section 6.2); COCO's 80 classes, the background comes on top.
        TaskFacts("detection", "Detection", "map", "mAP (%)", 0.97, None, "COCO", reference_floor=5.0,
                  default_resolution=320, default_num_classes=80),
        TaskFacts("segmentation", "Segmentation", "miou", "mIoU (%)", 0.97, 1, "PASCAL VOC 2012",
                  agreement_target=97.0, reference_floor=10.0,
                  # DeepLab's crop (V2 paper, section 6.3); PASCAL VOC's 20 classes + background.
                  default_resolution=513, default_num_classes=21),
    )
}
# The suite's tasks, in page and sweep order.
TASK_NAMES: tuple[str, ...] = tuple(TASK_FACTS)
