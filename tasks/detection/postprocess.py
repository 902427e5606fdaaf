"""Raw SSD outputs -> detections: scores, decode, class-wise NMS, top-k (TF's post-processing).

TF's SSD configs (ssdlite_mobilenet_v2_coco, ssd_mobilenet_v1_coco): ``batch_non_max_suppression``
with score threshold 1e-8, IoU 0.6, at most 100 detections per class and 100 per image; class
scores by sigmoid with the background column ignored. ``postprocess_detections`` is the fast
version: one top-k over all (anchor, class) pairs of each image, only those anchors decoded, one
``batched_nms`` per image. ``postprocess_exact`` is TF's per-class loop over every anchor,
kept as the reference the fast one is checked against (mAP within 0.2 points). Kept apart from the
network so the network alone exports to ONNX and is timed alone.

``nms="fast"`` is TFLite's ``TFLite_Detection_PostProcess`` with ``use_regular_nms = false`` (what
the official SSD files run): each anchor keeps its best ``max_classes_per_detection`` classes, one
class-agnostic NMS over the anchors' best scores (score >= threshold, IoU > threshold suppressed),
at most ``max_detections`` anchors, each reported with its best classes. Ties are the op's: among
equal scores the lower class and the lower anchor come first (8-bit scores tie often); boxes are
not clipped to the image (the op reports them as decoded).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image, nms

from backbones.errors import UserError
from tasks.detection.box_coding import decode
from tasks.detection.options import DEFAULTS, LABEL_MAPS, PRE_NMS_TOP_K, SCORINGS, DetectionOptions

__all__ = ["PRE_NMS_TOP_K", "class_scores", "label_category_ids", "postprocess_detections", "postprocess_exact"]


def class_scores(class_logits: torch.Tensor, scoring: str = DEFAULTS.scoring) -> torch.Tensor:
    """``[..., C]`` scores of the real classes from logits ``[..., C + 1]`` (column 0 = background).

    ``sigmoid`` (TF's SSD: independent scores, background column ignored) or ``softmax``
    (torchvision's SSD: probabilities over background + classes, background dropped).
    """
    if scoring == "sigmoid":
        return exact_sigmoid(class_logits[..., 1:])
    if scoring == "softmax":
        return class_logits.float().softmax(-1)[..., 1:]
    raise ValueError(f"unknown scoring {scoring!r}; choose from {', '.join(SCORINGS)}")


def exact_sigmoid(logits: torch.Tensor) -> torch.Tensor:
    """float32 sigmoid, the same for equal logits wherever they sit in the tensor.

    torch's float32 sigmoid can differ by an ulp between its vector and scalar loops, which breaks
    the ties of an 8-bit file's scores in an arbitrary order; computed in float64 and rounded, equal
    logits give equal scores."""
    return logits.double().sigmoid().float()


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on the calling thread only, restoring the thread count after.

    Post-processing works on small tensors (2034 x 91 values): a second thread saves nothing, and
    each parallel region waits for a worker that the network's runtime (ONNX Runtime's spinning
    pool, XNNPACK's, inductor's OpenMP) or another process may be holding; that wait is what made
    "end to end" far slower than network + post-processing timed apart.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def postprocess_detections(
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    anchors: torch.Tensor,
    image_size: tuple[int, int],
    options: DetectionOptions = DEFAULTS,
) -> list[dict[str, torch.Tensor]]:
    """Per image ``{"boxes" [K, 4] (x0, y0, x1, y1) in input pixels, "scores" [K], "labels" [K]}``.

    Labels are contiguous class indices (0-based, background removed); scores sorted descending.
    ``options`` (checked when made) gives the scoring, NMS mode and thresholds, the detection cap and
    the decoder's (x, y, w, h) ``box_scales`` (None: TF's 10, 10, 5, 5).
    """
    o = options
    with one_thread():
        if o.nms == "fast":
            return _postprocess_fast(class_logits, box_regression, anchors, image_size, scoring=o.scoring,
                                     score_threshold=o.score_threshold, nms_iou=o.nms_iou,
                                     max_detections=o.max_detections, max_classes=o.max_classes_per_detection,
                                     box_scales=o.box_scales)  # fmt: skip
        return _postprocess(class_logits, box_regression, anchors, image_size, scoring=o.scoring,
                            score_threshold=o.score_threshold, nms_iou=o.nms_iou, max_detections=o.max_detections,
                            pre_nms_top_k=o.pre_nms_top_k, box_scales=o.box_scales)


def _postprocess_fast(
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    anchors: torch.Tensor,
    image_size: tuple[int, int],
    *,
    scoring: str,
    score_threshold: float,
    nms_iou: float,
    max_detections: int,
    max_classes: int,
    box_scales: tuple[float, ...] | None,
) -> list[dict[str, torch.Tensor]]:
    """TFLite's ``NonMaxSuppressionMultiClassFastHelper``: NMS over anchors, not (anchor, class) pairs.
    Boxes stay as decoded, unclipped (``image_size`` is unused), as the op returns them."""
    results = []
    for logits, codes in zip(class_logits, box_regression.float(), strict=True):
        best_scores, best_classes = _best_scores(logits, scoring, max_classes)
        candidates = anchors_by_score(best_scores[:, 0], score_threshold)
        boxes = decode(codes[candidates], anchors[candidates], box_scales)
        # Each candidate's rank as its score: NMS visits them in the op's order, ties included.
        rank = torch.arange(len(candidates), 0, -1, dtype=torch.float32)
        chosen = nms(boxes, rank, nms_iou)[:max_detections]
        kept, kept_boxes = candidates[chosen], boxes[chosen]
        # Each kept anchor with its best classes, in selection order (TFLite: max_detections x classes).
        rows = torch.arange(len(kept) * best_scores.shape[1])
        anchor_of, class_of = rows // best_scores.shape[1], rows % best_scores.shape[1]
        results.append({"boxes": kept_boxes[anchor_of], "scores": best_scores[kept][anchor_of, class_of],
                        "labels": best_classes[kept][anchor_of, class_of]})
    return results


def _best_scores(logits: torch.Tensor, scoring: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's ``[A, k]`` best class scores and classes from its logits ``[A, C + 1]``.
    Sigmoid is monotonic: the logits are ranked, and only the winners' sigmoid is taken."""
    if scoring == "sigmoid":
        values, classes = best_classes_per_anchor(logits[:, 1:].float(), k)
        return exact_sigmoid(values), classes
    return best_classes_per_anchor(class_scores(logits, scoring), k)


def best_classes_per_anchor(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[A, k]`` best values of each anchor and their classes, equal values by lower class first.

    TFLite's op takes the arg-max (the first maximum) for one class; ``topk`` orders ties as it
    likes, and the 8-bit scores of a quantized file tie between classes."""
    if k == 1:
        values, classes = scores.max(dim=-1, keepdim=True)  # the first maximum, as the op's ArgMaxVector
        return values, classes
    values, classes = scores.sort(dim=-1, descending=True, stable=True)
    return values[:, :k], classes[:, :k]


def anchors_by_score(best: torch.Tensor, score_threshold: float) -> torch.Tensor:
    """Indices of the anchors whose ``best`` score reaches the threshold, highest first, equal scores
    by lower anchor first (the op's ``std::stable_sort``): the order its greedy NMS visits them."""
    candidates = torch.nonzero(best >= score_threshold).squeeze(1)
    return candidates[best[candidates].argsort(descending=True, stable=True)]


def _postprocess(
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    anchors: torch.Tensor,
    image_size: tuple[int, int],
    *,
    scoring: str,
    score_threshold: float,
    nms_iou: float,
    max_detections: int,
    pre_nms_top_k: int,
    box_scales: tuple[float, ...] | None = None,
) -> list[dict[str, torch.Tensor]]:
    batch, num_anchors, columns = class_logits.shape
    num_classes = columns - 1
    k = min(pre_nms_top_k, num_anchors * num_classes)
    if scoring == "sigmoid":
        # Sigmoid is monotonic: rank the logits (background column skipped, no copy), and take the
        # sigmoid of the k winners only.
        top_values, anchor_index, labels = _top_pairs(class_logits.float(), k, first_column=1)
        top_scores = exact_sigmoid(top_values)
    elif scoring == "softmax":
        top_scores, anchor_index, labels = _top_pairs(class_logits.float().softmax(-1), k, first_column=1)
    else:
        raise ValueError(f"unknown scoring {scoring!r}; choose from {', '.join(SCORINGS)}")
    codes = box_regression.float().gather(1, anchor_index.unsqueeze(-1).expand(-1, -1, 4))
    boxes = clip_boxes_to_image(decode(codes.reshape(-1, 4), anchors[anchor_index.reshape(-1)], box_scales), image_size)
    boxes = boxes.view(batch, k, 4)
    results = []
    for i in range(batch):  # one NMS per image (classes kept apart by batched_nms, no class loop)
        scores, image_boxes, image_labels = top_scores[i], boxes[i], labels[i]
        if not scores[-1] > score_threshold:  # sorted: only then can some fall below the threshold
            passing = int((scores > score_threshold).sum())
            scores, image_boxes, image_labels = scores[:passing], image_boxes[:passing], image_labels[:passing]
        kept = batched_nms(image_boxes, scores, image_labels, nms_iou)[:max_detections]
        results.append({"boxes": image_boxes[kept], "scores": scores[kept], "labels": image_labels[kept]})
    return results


def _top_pairs(
    values: torch.Tensor, k: int, first_column: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image, the ``k`` largest (anchor, class) entries of ``values[:, :, first_column:]``
    (``[B, A, W]``), sorted: their values, anchor indices and class indices (from ``first_column``).

    Same result as a top-k over all pairs, several times faster on 2034 x 90: each anchor's best
    class is a distinct pair, so the k-th best pair is at least the k-th best per-anchor maximum;
    only pairs above that bound (usually a few thousand of 183k) reach the top-k.
    """
    batch, num_anchors, width = values.shape
    classes = values[..., first_column:]
    if k > num_anchors:
        flat = classes.reshape(batch, -1)
        best = flat.topk(k, dim=1)
        num = width - first_column
        return best.values, best.indices // num, best.indices % num
    bound = classes.amax(-1).topk(k, dim=1).values[:, -1]
    top_values, top_anchor, top_class = [], [], []
    for image in range(batch):
        above = values[image] >= bound[image]
        above[:, :first_column] = False
        index = torch.nonzero(above.view(-1)).squeeze(1)
        best = values[image].view(-1)[index].topk(k)
        chosen = index[best.indices]
        top_values.append(best.values)
        top_anchor.append(chosen // width)
        top_class.append(chosen % width - first_column)
    return torch.stack(top_values), torch.stack(top_anchor), torch.stack(top_class)


def postprocess_exact(
    class_logits: torch.Tensor,
    box_regression: torch.Tensor,
    anchors: torch.Tensor,
    image_size: tuple[int, int],
    *,
    scoring: str = DEFAULTS.scoring,
    score_threshold: float = DEFAULTS.score_threshold,
    nms_iou: float = DEFAULTS.nms_iou,
    max_detections: int = DEFAULTS.max_detections,
    max_per_class: int = DEFAULTS.max_detections,
) -> list[dict[str, torch.Tensor]]:
    """TF's ``multiclass_non_max_suppression`` as written: every anchor decoded, NMS class by class
    over all anchors above the threshold, at most ``max_per_class`` each, then the best overall.
    Slow (a Python loop over classes); the reference for ``postprocess_detections``."""
    all_scores = class_scores(class_logits, scoring)
    results = []
    for scores, codes in zip(all_scores, box_regression.float(), strict=True):
        boxes = clip_boxes_to_image(decode(codes, anchors), image_size)
        parts_boxes, parts_scores, parts_labels = [], [], []
        for label in range(scores.shape[1]):
            column = scores[:, label]
            index = torch.nonzero(column > score_threshold).squeeze(1)
            keep = index[nms(boxes[index], column[index], nms_iou)[:max_per_class]]
            parts_boxes.append(boxes[keep])
            parts_scores.append(column[keep])
            parts_labels.append(torch.full((len(keep),), label, dtype=torch.int64))
        found_scores = torch.cat(parts_scores)
        order = found_scores.argsort(descending=True, stable=True)[:max_detections]
        results.append({"boxes": torch.cat(parts_boxes)[order], "scores": found_scores[order],
                        "labels": torch.cat(parts_labels)[order]})
    return results


def label_category_ids(label_map: str | None, dataset_ids: list[int]) -> list[int]:
    """COCO category id of each label the model predicts: the dataset's own categories in order,
    or, with ``label_map: coco90`` (TF's COCO models, 90 outputs; ``DetectionTask.parse_options``
    checks the class count), label + 1."""
    if label_map is None:
        return list(dataset_ids)
    if label_map not in LABEL_MAPS:
        raise UserError(f"--label-map: unknown value {label_map!r}; choose from {', '.join(LABEL_MAPS)}")
    return list(range(1, 91))
