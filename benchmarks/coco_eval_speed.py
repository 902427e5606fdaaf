"""Benchmark: COCO evaluation time, faster-coco-eval vs pycocotools, on the same generated data.

    python -m benchmarks.coco_eval_speed [--images 5000] [--detections 100]

The data (``random_coco_results``) also drives the test that the two give identical numbers:
gapped category ids, crowd regions, all three area ranges, images without objects, and
detections that are near-misses, duplicates, wrong-class hits and background noise.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

CATEGORY_IDS = (1, 3, 7, 8, 13, 21, 44, 90)  # gapped, like COCO's 1..90 for 80 classes


def random_coco_results(
    num_images: int, detections_per_image: int = 30, seed: int = 0
) -> tuple[dict[str, Any], np.ndarray]:
    """A COCO ground-truth dict and ``[N, 7]`` result rows (image_id, x, y, w, h, score, category_id)."""
    rng = np.random.default_rng(seed)
    images, annotations, rows = [], [], []
    for index in range(num_images):
        image_id = 1000 + 7 * index  # gapped image ids too
        width, height = int(rng.integers(200, 640)), int(rng.integers(200, 640))
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id:012d}.jpg"})
        num_objects = 0 if rng.random() < 0.1 else int(rng.integers(1, 12))
        gt_boxes = []
        for _ in range(num_objects):
            # Log-uniform sides: small (< 32^2), medium and large objects all occur.
            w, h = np.exp(rng.uniform(np.log(4), np.log(min(width, height) * 0.9), size=2))
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            category = int(rng.choice(CATEGORY_IDS))
            crowd = int(rng.random() < 0.08)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h * rng.uniform(0.5, 1.0)),  # segment area, not box area (as in COCO)
                    "iscrowd": crowd,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
            )
            gt_boxes.append((x, y, w, h, category))
        for _ in range(detections_per_image):
            kind = rng.random()
            if gt_boxes and kind < 0.6:  # a jittered hit (sometimes the wrong class)
                x, y, w, h, category = gt_boxes[int(rng.integers(len(gt_boxes)))]
                jitter = rng.normal(0, 0.08, size=4) * np.array([w, h, w, h])
                x, y, w, h = x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])
                if rng.random() < 0.1:
                    category = int(rng.choice(CATEGORY_IDS))
            else:  # background noise
                w, h = np.exp(rng.uniform(np.log(4), np.log(min(width, height) * 0.8), size=2))
                x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
                category = int(rng.choice(CATEGORY_IDS))
            rows.append((image_id, x, y, w, h, float(rng.uniform(0.01, 1.0)), category))
    categories = [{"id": c, "name": f"class{c}", "supercategory": "shape"} for c in CATEGORY_IDS]
    ground_truth = {"images": images, "annotations": annotations, "categories": categories}
    return ground_truth, np.asarray(rows, dtype=np.float64).reshape(-1, 7)


def pycocotools_stats(ground_truth: dict[str, Any], detections: np.ndarray) -> np.ndarray:
    """The reference: pycocotools' COCOeval, stats[:12]."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        # The same one-level copy as ours (COCOeval marks the annotations it reads).
        gt.dataset = dict(ground_truth, annotations=[dict(a) for a in ground_truth["annotations"]])
        gt.createIndex()
        dt = gt.loadRes(np.asarray(detections, dtype=np.float64))
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats[:12], dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    from tasks.detection.evaluation import coco_stats

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000, help="images (COCO val2017 has 5000)")
    parser.add_argument("--detections", type=int, default=100, help="detections per image (SSD keeps 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ground_truth, detections = random_coco_results(args.images, args.detections, args.seed)
    print(f"{args.images} images, {len(ground_truth['annotations'])} ground-truth boxes, {len(detections)} detections")

    started = time.perf_counter()
    fast = coco_stats(ground_truth, detections)
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = pycocotools_stats(ground_truth, detections)
    reference_s = time.perf_counter() - started

    print(f"faster-coco-eval: {fast_s:8.2f} s   AP {fast[0]:.6f}")
    print(f"pycocotools:      {reference_s:8.2f} s   AP {reference[0]:.6f}")
    print(f"speed-up: {reference_s / fast_s:.1f}x   largest difference over the 12 numbers: "
          f"{np.abs(fast - reference).max():.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
