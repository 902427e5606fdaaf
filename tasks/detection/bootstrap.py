"""COCO mAP with a 95 % bootstrap interval over images (``tasks/evaluate.py``'s detection evaluator).

COCOeval matches detections to ground truth image by image (``evaluate``); only its accumulation
mixes images. So matching runs once (pycocotools), and each bootstrap resample re-accumulates
with every image weighted by how often the resample drew it: weighted true/false-positive
cumulative sums and a weighted ground-truth count give the precision-recall curve, read at COCO's
101 recall points as ``COCOeval.accumulate`` does. With every weight 1 this is COCO's own mAP.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

RECALL_POINTS = np.linspace(0.0, 1.0, 101)
CHUNK = 50


def coco_matches(ground_truth: dict[str, Any], rows: np.ndarray, image_ids: list[int]) -> list[dict[str, np.ndarray]]:
    """Per category (area "all", 100 detections): each detection's score, image position, matched flag
    per IoU threshold and ignore flag, and each image's count of non-ignored ground truth."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dict(ground_truth, annotations=[dict(a) for a in ground_truth["annotations"]])
        gt.createIndex()
        dt = gt.loadRes(rows) if len(rows) else COCO()
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
    params = evaluator.params
    position = {image: i for i, image in enumerate(params.imgIds)}
    per_category = []
    num_areas, num_images = len(params.areaRng), len(params.imgIds)
    for k in range(len(params.catIds)):
        entries = [evaluator.evalImgs[k * num_areas * num_images + i] for i in range(num_images)]  # area "all"
        scores, images, matched, ignored = [], [], [], []
        gt_count = np.zeros(num_images)
        for e in entries:
            if e is None:
                continue
            i = position[e["image_id"]]
            gt_count[i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            scores.append(np.asarray(e["dtScores"], dtype=np.float64))
            images.append(np.full(len(e["dtScores"]), i))
            matched.append(np.asarray(e["dtMatches"]).reshape(len(params.iouThrs), -1) > 0)
            ignored.append(np.asarray(e["dtIgnore"]).reshape(len(params.iouThrs), -1).astype(bool))
        if not scores:
            per_category.append({"gt": gt_count, "images": np.zeros(0, int), "tp": np.zeros((10, 0), bool),
                                 "fp": np.zeros((10, 0), bool)})
            continue
        order = np.argsort(-np.concatenate(scores), kind="mergesort")
        match = np.concatenate(matched, 1)[:, order]
        ignore = np.concatenate(ignored, 1)[:, order]
        per_category.append({"gt": gt_count, "images": np.concatenate(images)[order],
                             "tp": match & ~ignore, "fp": ~match & ~ignore})
    return per_category


def weighted_map(per_category: list[dict[str, np.ndarray]], weights: np.ndarray) -> np.ndarray:
    """COCO mAP (percent) for each row of image ``weights`` ``[S, N]`` (1 everywhere: COCO's mAP)."""
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if len(weights) > CHUNK:  # bounds the [samples, thresholds, detections, 101] comparison
        return np.concatenate([weighted_map(per_category, weights[i : i + CHUNK]) for i in range(0, len(weights), CHUNK)])
    samples = len(weights)
    total = np.zeros(samples)
    counted = np.zeros(samples)
    for category in per_category:
        positives = weights @ category["gt"]  # [S]
        valid = positives > 0
        if not valid.any():
            continue
        w = weights[:, category["images"]]  # [S, D]
        if w.shape[1] == 0:
            counted += valid
            continue
        tp = np.cumsum(w[:, None, :] * category["tp"][None], axis=2)  # [S, T, D]
        fp = np.cumsum(w[:, None, :] * category["fp"][None], axis=2)
        recall = tp / np.where(valid, positives, 1.0)[:, None, None]
        precision = tp / np.maximum(tp + fp, np.spacing(1))
        precision = np.maximum.accumulate(precision[..., ::-1], axis=2)[..., ::-1]  # COCO's envelope
        num = recall.shape[2]
        # COCO reads the precision at the first point whose recall reaches each of the 101 levels
        # (``searchsorted(..., side="left")``): the count of points below the level, vectorised.
        index = (recall[..., None] < RECALL_POINTS).sum(2)  # [S, T, 101]
        padded = np.concatenate([precision, np.zeros((*precision.shape[:2], 1))], 2)
        values = np.take_along_axis(padded, np.minimum(index, num), axis=2)
        ap = values.mean((1, 2))
        total += np.where(valid, ap, 0.0)
        counted += valid
    return 100.0 * total / np.maximum(counted, 1)


@torch.no_grad()
def detection_evaluator(model: nn.Module, datamodule: Any, keep: bool) -> Any:
    """``tasks.evaluate`` evaluator: COCO's 12 numbers (faster-coco-eval), and mAP's bootstrap data.

    Post-processing settings come from ``datamodule.options`` (the task's options, parsed once from
    the run config by ``DetectionTask.build_datamodule``; the evaluator sees no config).
    """
    from tasks.detection.decoder import DetectionDecoder
    from tasks.detection.evaluation import CocoEvaluator
    from tasks.detection.module import to_original_size
    from tasks.detection.postprocess import label_category_ids
    from tasks.evaluate import PerImage

    options = datamodule.options
    decode = DetectionDecoder.for_model(model, options)
    label_map = options.label_map or getattr(model, "label_map", None)  # an imported TF model's label map
    evaluator = CocoEvaluator(datamodule.val_ground_truth(), label_category_ids(label_map, datamodule.category_ids()))
    predictions = []
    for batch in datamodule.val_dataloader():
        if batch is None:
            continue
        images = batch["images"]
        size = tuple(images.shape[-2:])
        detections = decode(model(images), size)
        scaled = to_original_size(detections, size, batch["orig_sizes"])
        evaluator.update(batch["image_ids"].tolist(), scaled)
        if keep:
            predictions.extend(scaled)
    metrics = evaluator.compute()
    images = int(metrics.pop("images"))
    per_image = evaluator.gathered()
    ids = sorted(per_image)
    rows = np.concatenate([per_image[i] for i in ids]) if ids else np.zeros((0, 7))
    matches = coco_matches(datamodule.val_ground_truth(), rows, ids)
    eye = np.eye(len(ids))
    return PerImage(
        metrics=metrics,
        images=images,
        resample={"map": (eye, lambda counts: weighted_map(matches, counts))},
        predictions=predictions,
    )
