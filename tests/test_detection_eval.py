"""COCO evaluation: faster-coco-eval gives pycocotools' 12 numbers; DDP gathering counts each image once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.coco_eval_speed import CATEGORY_IDS, pycocotools_stats, random_coco_results
from tasks.detection.evaluation import COCO_METRICS, CocoEvaluator, coco_stats, to_percent


@pytest.fixture(scope="module")
def coco_results() -> tuple[dict, np.ndarray]:
    return random_coco_results(400, detections_per_image=25, seed=3)


def test_the_12_numbers_equal_pycocotools(coco_results) -> None:
    ground_truth, detections = coco_results
    crowd = sum(a["iscrowd"] for a in ground_truth["annotations"])
    areas = np.array([a["area"] for a in ground_truth["annotations"]])
    # The data really exercises crowd regions, gapped ids and all three size ranges.
    assert crowd > 20 and len({a["category_id"] for a in ground_truth["annotations"]}) == len(CATEGORY_IDS)
    assert (areas < 32**2).sum() > 100 and (areas > 96**2).sum() > 100
    ours = coco_stats(ground_truth, detections)
    reference = pycocotools_stats(ground_truth, detections)
    assert len(ours) == 12
    assert 0.05 < ours[0] < 0.95  # neither trivial nor perfect
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-9)


def test_subset_of_images_equals_pycocotools_on_that_subset(coco_results) -> None:
    ground_truth, detections = coco_results
    kept = {image["id"] for image in ground_truth["images"][::3]}
    subset = {
        **ground_truth,
        "images": [i for i in ground_truth["images"] if i["id"] in kept],
        "annotations": [a for a in ground_truth["annotations"] if a["image_id"] in kept],
    }
    rows = detections[np.isin(detections[:, 0], list(kept))]
    np.testing.assert_allclose(
        coco_stats(ground_truth, rows, image_ids=sorted(kept)), pycocotools_stats(subset, rows), rtol=0, atol=1e-9
    )


def test_perfect_and_empty_detections() -> None:
    ground_truth, _ = random_coco_results(30, detections_per_image=0, seed=1)
    perfect = np.array(
        [[a["image_id"], *a["bbox"], 1.0, a["category_id"]] for a in ground_truth["annotations"] if not a["iscrowd"]]
    )
    assert coco_stats(ground_truth, perfect)[0] == pytest.approx(1.0)
    empty = coco_stats(ground_truth, np.zeros((0, 7)))
    assert (empty[:6] == 0).all()
    assert to_percent(np.array([0.5, -1.0] + [0.0] * 10))["map_50"] == -1.0


def exact_boxes(detections: np.ndarray) -> np.ndarray:
    """Box coordinates on a 1/16-pixel grid, so (x, y, w, h) -> corners -> (x, y, w, h) is exact, and
    float32 scores, as models give them (the evaluator keeps scores in float32, which can tie two)."""
    out = detections.copy()
    out[:, 1:5] = np.maximum(np.round(out[:, 1:5] * 16) / 16, 1 / 16)
    out[:, 5] = out[:, 5].astype(np.float32)
    return out


def _evaluator_inputs(ground_truth: dict, detections: np.ndarray, image_ids: list[int]):
    """Rows of ``image_ids`` as (image_ids, predictions) in the evaluator's input format."""
    contiguous = {c: i for i, c in enumerate(CATEGORY_IDS)}
    predictions = []
    for image_id in image_ids:
        rows = detections[detections[:, 0] == image_id]
        boxes = torch.tensor(np.concatenate([rows[:, 1:3], rows[:, 1:3] + rows[:, 3:5]], 1), dtype=torch.float64)
        predictions.append(
            {
                "boxes": boxes,
                "scores": torch.tensor(rows[:, 5]),
                "labels": torch.tensor([contiguous[int(c)] for c in rows[:, 6]], dtype=torch.int64),
            }
        )
    return image_ids, predictions


def test_evaluator_matches_direct_evaluation(coco_results) -> None:
    ground_truth, detections = coco_results
    detections = exact_boxes(detections)
    evaluator = CocoEvaluator(ground_truth, list(CATEGORY_IDS))
    ids = [image["id"] for image in ground_truth["images"]]
    evaluator.update(*_evaluator_inputs(ground_truth, detections, ids[:150]))
    evaluator.update(*_evaluator_inputs(ground_truth, detections, ids[150:]))
    metrics = evaluator.compute()
    assert metrics["images"] == len(ids) and set(COCO_METRICS) <= set(metrics)
    expected = to_percent(pycocotools_stats(ground_truth, detections))
    for name in COCO_METRICS:
        assert metrics[name] == pytest.approx(expected[name], abs=1e-9)


def _ddp_worker(rank: int, world: int, init_file: str, queue) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    ground_truth, detections = random_coco_results(120, detections_per_image=20, seed=5)
    detections = exact_boxes(detections)
    ids = [image["id"] for image in ground_truth["images"]]
    # A padding sampler: rank 1 sees the last images of rank 0 again.
    mine = ids[:70] if rank == 0 else ids[60:]
    evaluator = CocoEvaluator(ground_truth, list(CATEGORY_IDS))
    evaluator.update(*_evaluator_inputs(ground_truth, detections, mine))
    queue.put((rank, evaluator.compute()))
    torch.distributed.destroy_process_group()


def test_ddp_gathers_every_image_once(tmp_path) -> None:
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / "init"), queue), nprocs=2, start_method="spawn")
    results = dict(queue.get() for _ in range(2))
    ground_truth, detections = random_coco_results(120, detections_per_image=20, seed=5)
    expected = to_percent(pycocotools_stats(ground_truth, exact_boxes(detections)))
    for rank in (0, 1):
        assert results[rank]["images"] == 120
        for name in COCO_METRICS:
            assert results[rank][name] == pytest.approx(expected[name], abs=1e-9)
