"""The 12 COCO detection numbers with faster-coco-eval (C++ COCOeval, identical to pycocotools).

Detections are evaluated against the dataset's own ground-truth JSON: crowd regions, area
ranges and category ids are exactly COCO's. Under DDP every rank's detections are gathered and
each image is counted once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

# COCOeval's ``stats`` order (pycocotools ``summarize``).
COCO_METRICS = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)

_quiet = logging.getLogger("tasks.detection.coco_eval").debug


def coco_stats(ground_truth: Any, detections: np.ndarray, image_ids: list[int] | None = None) -> np.ndarray:
    """COCOeval ``stats[:12]`` (fractions; -1 where a range holds no ground truth).

    ``ground_truth`` is a COCO-format dict or a ``faster_coco_eval.COCO``; ``detections`` is an
    ``[N, 7]`` array of (image_id, x, y, w, h, score, category_id), COCO's result layout.
    ``image_ids`` restricts evaluation to the images that were actually run.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    gt = ground_truth if isinstance(ground_truth, COCO) else ground_truth_coco(ground_truth)
    dt = results_as_coco(gt, detections)
    evaluator = COCOeval_faster(gt, dt, iouType="bbox", print_function=_quiet)
    if image_ids is not None:
        evaluator.params.imgIds = sorted({int(i) for i in image_ids})
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return np.asarray(evaluator.stats[: len(COCO_METRICS)], dtype=np.float64)


def ground_truth_coco(ground_truth: dict[str, Any]) -> Any:
    """A ``faster_coco_eval.COCO`` over ``ground_truth``, which stays untouched: COCOeval marks the
    annotations it reads (``ignore``), so each annotation is copied (one level deep is enough)."""
    from faster_coco_eval import COCO

    data = dict(ground_truth, annotations=[dict(a) for a in ground_truth["annotations"]])
    return COCO(data, print_function=_quiet)


def results_as_coco(gt: Any, detections: np.ndarray) -> Any:
    """The result set ``COCO.loadRes`` would build for bbox results (area = w * h, iscrowd 0, ids
    from 1), minus the box-shaped segmentation polygons it adds, which bbox evaluation never reads
    and which cost as much time as the evaluation itself."""
    from faster_coco_eval import COCO

    rows = np.asarray(detections, dtype=np.float64).reshape(-1, 7)
    # Column-wise conversion: a per-row Python loop costs as much as the evaluation.
    columns = zip(
        rows[:, 0].astype(np.int64).tolist(),
        rows[:, 1:5].tolist(),
        (rows[:, 3] * rows[:, 4]).tolist(),
        rows[:, 5].tolist(),
        rows[:, 6].astype(np.int64).tolist(),
        strict=True,
    )
    annotations = [
        {"id": i, "image_id": image, "bbox": box, "area": area, "score": score, "category_id": category, "iscrowd": 0}
        for i, (image, box, area, score, category) in enumerate(columns, start=1)
    ]
    unknown = {a["image_id"] for a in annotations} - set(gt.imgs)
    if unknown:
        raise ValueError(f"detections for image ids absent from the ground truth: {sorted(unknown)[:5]}")
    dt = COCO(print_function=_quiet)
    dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": annotations}
    dt.createIndex()
    return dt


def to_percent(stats: np.ndarray) -> dict[str, float]:
    """Named metrics in percent; COCO's -1 (no ground truth in that size range) stays -1."""
    return {name: (float(v) * 100.0 if v >= 0 else -1.0) for name, v in zip(COCO_METRICS, stats, strict=True)}


def detections_to_rows(
    image_id: int,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    category_ids: list[int],
) -> np.ndarray:
    """One image's detections (x0, y0, x1, y1 in original pixels, contiguous labels) as result rows."""
    boxes = boxes.detach().float().cpu().numpy().astype(np.float64)
    rows = np.empty((len(boxes), 7), dtype=np.float64)
    rows[:, 0] = image_id
    rows[:, 1:3] = boxes[:, :2]
    rows[:, 3:5] = boxes[:, 2:] - boxes[:, :2]
    rows[:, 5] = scores.detach().float().cpu().numpy()
    rows[:, 6] = np.asarray(category_ids, dtype=np.int64)[labels.detach().cpu().numpy().astype(np.int64)]
    return rows


class CocoEvaluator:
    """Collects detections image by image and computes the COCO numbers once per evaluation."""

    def __init__(self, ground_truth: dict[str, Any], category_ids: list[int]) -> None:
        self.gt = ground_truth_coco(ground_truth)
        self.category_ids = list(category_ids)
        self._known = np.asarray(sorted(self.gt.cats), dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        self._rows: dict[int, np.ndarray] = {}

    def update(self, image_ids: list[int], predictions: list[dict[str, torch.Tensor]]) -> None:
        """``predictions`` in original-image pixels with contiguous labels (``postprocess`` output, rescaled).

        Detections of a category the ground truth does not have (TF's 90-id map has 10 unused
        ids) are dropped.
        """
        for image_id, p in zip(image_ids, predictions, strict=True):
            rows = detections_to_rows(int(image_id), p["boxes"], p["scores"], p["labels"], self.category_ids)
            self._rows[int(image_id)] = rows[np.isin(rows[:, 6], self._known)]

    def gathered(self) -> dict[int, np.ndarray]:
        """This rank's detections merged with every other rank's, one entry per image."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return dict(self._rows)
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, self._rows)
        merged: dict[int, np.ndarray] = {}
        for part in parts:
            for image_id, rows in part.items():
                # A padding sampler may hand an image to two ranks: count it once.
                merged.setdefault(image_id, rows)
        return merged

    def compute(self) -> dict[str, float]:
        """The 12 COCO numbers in percent over every image evaluated on any rank, plus ``images``."""
        per_image = self.gathered()
        if not per_image:
            return {**{name: 0.0 for name in COCO_METRICS}, "images": 0}
        rows = np.concatenate(list(per_image.values()))
        stats = coco_stats(self.gt, rows, image_ids=list(per_image))
        return {**to_percent(stats), "images": len(per_image)}
