"""TF object-detection API conventions: the ssd head, TF's anchors, sigmoid scoring, TF's
hard-example miner, TF's RMSProp, and the fast post-processing against the exact one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backbones import create_backbone
from tasks.detection.anchors import AnchorConfig, anchor_boxes
from tasks.detection.bootstrap import weighted_map
from tasks.detection.loss import classification_losses, ssd_loss, tf_hard_example_mining
from tasks.detection.options import DetectionOptions
from tasks.detection.postprocess import class_scores, postprocess_detections, postprocess_exact
from tasks.detection.ssdlite import SSDLite, extra_depths


def test_ssd_head_has_1x1_predictors_and_width_scaled_extras() -> None:
    model = SSDLite(create_backbone("mnv1", width=0.75), num_classes=90, head="ssd", width=0.75).eval()
    assert [tuple(layer.weight.shape) for layer in model.regression.layers] == [
        (12, 384, 1, 1), (24, 768, 1, 1), (24, 384, 1, 1), (24, 192, 1, 1), (24, 192, 1, 1), (24, 96, 1, 1)]
    assert [tuple(layer.weight.shape[:2]) for layer in model.classification.layers][:2] == [(273, 384), (546, 768)]
    # TF's depth multiplier on the extra layers (min depth 16): 192->384, 96->192, 96->192, 48->96.
    assert extra_depths(0.75) == [(192, 384), (96, 192), (96, 192), (48, 96)]
    assert extra_depths(0.1) == [(25, 51), (16, 25), (16, 25), (16, 16)]
    assert extra_depths(1.0) == [(256, 512), (128, 256), (128, 256), (64, 128)]
    class_logits, box_regression = model(torch.zeros(1, 3, 300, 300))
    assert class_logits.shape == (1, 1917, 91) and box_regression.shape == (1, 1917, 4)
    assert model.feature_sizes((300, 300)) == [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]


def test_tf_anchor_generator_gives_1917_anchors_at_300() -> None:
    sizes = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    anchors = anchor_boxes(AnchorConfig(), sizes, (300, 300))
    assert len(anchors) == 19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6 == 1917
    # Layer 2 (10x10), first cell: ratio 1 at scale 0.35, then ratio 2 (wide), as TF orders them.
    first = anchors[19 * 19 * 3 : 19 * 19 * 3 + 2] / 300
    centre = 0.05
    assert first[0].tolist() == pytest.approx([centre - 0.175, centre - 0.175, centre + 0.175, centre + 0.175])
    half_w, half_h = 0.35 * math.sqrt(2) / 2, 0.35 / math.sqrt(2) / 2
    assert first[1].tolist() == pytest.approx([centre - half_w, centre - half_h, centre + half_w, centre + half_h])


def test_sigmoid_scoring_ignores_the_background_column_softmax_does_not() -> None:
    logits = torch.tensor([[[5.0, 0.0, -2.0]]])
    sigmoid = class_scores(logits, "sigmoid")
    softmax = class_scores(logits, "softmax")
    assert sigmoid[0, 0].tolist() == pytest.approx([0.5, torch.sigmoid(torch.tensor(-2.0)).item()])
    # Softmax: a confident background pushes every class down; sigmoid does not see column 0.
    assert softmax[0, 0, 0].item() == pytest.approx(math.exp(0) / (math.exp(5) + 1 + math.exp(-2)))
    assert class_scores(logits.clone().index_fill_(-1, torch.tensor([0]), -9.0), "sigmoid").equal(sigmoid)
    with pytest.raises(ValueError, match="scoring"):
        class_scores(logits, "relu")


def test_sigmoid_loss_is_per_column_binary_cross_entropy() -> None:
    logits = torch.tensor([[[2.0, -1.0, 0.5], [-3.0, 1.0, 0.0]]])
    classes = torch.tensor([[0, 2]])
    losses = classification_losses(logits, classes, "sigmoid")
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected0 = bce(logits[0, 0], torch.tensor([1.0, 0.0, 0.0]), reduction="sum")
    expected1 = bce(logits[0, 1], torch.tensor([0.0, 0.0, 1.0]), reduction="sum")
    assert losses[0].tolist() == pytest.approx([expected0.item(), expected1.item()], rel=1e-6)


def _row_of_boxes(n: int) -> torch.Tensor:
    return torch.stack([torch.tensor([10.0 * i, 0.0, 10.0 * i + 8, 8.0]) for i in range(n)])


def test_tf_miner_keeps_positives_and_three_negatives_per_positive_by_loss() -> None:
    n = 30
    boxes = _row_of_boxes(n)[None]
    losses = torch.arange(n, dtype=torch.float32)[None]  # anchor 29 hardest
    positive = torch.zeros(1, n, dtype=torch.bool)
    positive[0, [0, 5]] = True  # two positives with low loss: 6 negatives allowed
    mask = tf_hard_example_mining(losses, positive, boxes)
    assert mask[0].nonzero().squeeze(1).tolist() == [0, 5, 24, 25, 26, 27, 28, 29]
    # No positive: min_negatives_per_image = 3.
    mask = tf_hard_example_mining(losses, torch.zeros_like(positive), boxes)
    assert mask[0].nonzero().squeeze(1).tolist() == [27, 28, 29]


def test_tf_miner_nms_drops_a_near_duplicate_box_and_caps_the_examples() -> None:
    n = 10
    boxes = _row_of_boxes(n)
    boxes[8] = boxes[9] + torch.tensor([0.0, 0.0, 0.0, 0.01])  # IoU > 0.99 with the hardest box
    losses = torch.arange(n, dtype=torch.float32)[None]
    positive = torch.zeros(1, n, dtype=torch.bool)
    positive[0, 0] = True
    mask = tf_hard_example_mining(losses, positive, boxes[None])
    assert mask[0].nonzero().squeeze(1).tolist() == [0, 6, 7, 9]  # 8 suppressed: 9, 7, 6 are the three
    # num_hard_examples counts the examples NMS keeps, before the negative/positive ratio:
    # the positive (lowest loss) falls outside a cap of 4.
    mask = tf_hard_example_mining(losses, positive, boxes[None], num_hard_examples=4)
    assert mask[0].nonzero().squeeze(1).tolist() == [6, 7, 9]  # 3 = min negatives, no positive left


def test_ssd_loss_defaults_to_sigmoid_with_the_tf_miner() -> None:
    torch.manual_seed(0)
    anchors = _row_of_boxes(40)
    class_logits = torch.randn(2, 40, 4)
    box_regression = torch.randn(2, 40, 4)
    targets = [{"boxes": anchors[:2].clone(), "labels": torch.tensor([0, 2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    default = ssd_loss(class_logits, box_regression, targets, anchors)
    explicit = ssd_loss(class_logits, box_regression, targets, anchors, scoring="sigmoid", mining="tf")
    softmax = ssd_loss(class_logits, box_regression, targets, anchors, scoring="softmax", mining="ratio")
    assert default["loss"].item() == explicit["loss"].item() != softmax["loss"].item()
    # Image 0: 2 positives + 6 negatives; image 1: 3 negatives; normalised by the 2 matches.
    per_anchor = classification_losses(class_logits, torch.tensor([[1, 3] + [0] * 38, [0] * 40]), "sigmoid")
    expected = (per_anchor[0, :2].sum() + per_anchor[0, 2:].topk(6).values.sum()
                + per_anchor[1].topk(3).values.sum()) / 2
    assert default["class_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_rmsprop_tf_step_matches_tfs_formula() -> None:
    """TF: ms = rho ms + (1 - rho) g^2 (ms starts at 1); mom = m mom + lr g / sqrt(ms + eps); w -= mom."""
    from timm.optim import RMSpropTF

    lr, rho, momentum, eps = 0.004, 0.9, 0.9, 1.0
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    optimizer = RMSpropTF([w], lr=lr, alpha=rho, momentum=momentum, eps=eps)
    ms, mom, expected = np.ones(3), np.zeros(3), w.detach().numpy().astype(np.float64).copy()
    for g in ([0.1, -0.2, 3.0], [0.3, 0.0, -1.0]):
        w.grad = torch.tensor(g)
        optimizer.step()
        g = np.asarray(g)
        ms = rho * ms + (1 - rho) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + eps)
        expected -= mom
        assert w.detach().numpy() == pytest.approx(expected, rel=1e-6)


def test_the_suite_builds_rmsprop_as_tf() -> None:
    import lightning as L
    from timm.optim import RMSpropTF

    from tasks.base import BenchModule

    module = BenchModule(torch.nn.Linear(2, 2), optimizer="rmsprop", lr=0.004, schedule="constant")
    # A real Trainer attached the way fit() attaches it; configure_optimizers reads its step counts.
    trainer = L.Trainer(max_steps=10, logger=False, enable_progress_bar=False, enable_checkpointing=False)
    trainer.strategy.connect(module)
    module.trainer = trainer
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, RMSpropTF)
    assert optimizer.defaults["eps"] == 1.0 and optimizer.defaults["alpha"] == 0.9


@pytest.mark.parametrize("scoring", ["sigmoid", "softmax"])
def test_fast_postprocess_agrees_with_the_exact_one(scoring: str) -> None:
    torch.manual_seed(0)
    anchors = SSDLite(create_backbone("mnv2", width=0.35), 20).anchors((128, 128))
    class_logits = torch.randn(2, len(anchors), 21) * 2 - 3
    box_regression = torch.randn(2, len(anchors), 4) * 0.5
    fast = postprocess_detections(class_logits, box_regression, anchors, (128, 128),
                                  DetectionOptions(scoring=scoring, pre_nms_top_k=len(anchors) * 20))
    exact = postprocess_exact(class_logits, box_regression, anchors, (128, 128), scoring=scoring)
    for ours, reference in zip(fast, exact, strict=True):
        assert len(ours["scores"]) == len(reference["scores"]) == 100
        torch.testing.assert_close(ours["scores"], reference["scores"])
        torch.testing.assert_close(ours["boxes"], reference["boxes"])
        assert ours["labels"].tolist() == reference["labels"].tolist()
    # The default top-k keeps the best detections (the first of a score-sorted list).
    default = postprocess_detections(class_logits, box_regression, anchors, (128, 128),
                                     DetectionOptions(scoring=scoring))
    torch.testing.assert_close(default[0]["scores"][:20], exact[0]["scores"][:20])


def test_weighted_map_is_cocos_map_and_counts_duplicate_images() -> None:
    # One category, 2 images: image 0 has 1 GT found by a 0.9 detection; image 1 has 1 GT missed
    # and a 0.8 false positive. COCO's AP: precision 1 up to recall 0.5 -> 51 of 101 points.
    category = {"gt": np.array([1.0, 1.0]), "images": np.array([0, 1]),
                "tp": np.tile(np.array([[True, False]]), (10, 1)), "fp": np.tile(np.array([[False, True]]), (10, 1))}
    assert weighted_map([category], np.ones((1, 2)))[0] == pytest.approx(100 * 51 / 101)
    # Image 0 drawn twice, image 1 never: recall 1 at precision 1.
    assert weighted_map([category], np.array([[2.0, 0.0]]))[0] == pytest.approx(100.0)
    assert weighted_map([category], np.array([[0.0, 2.0]]))[0] == pytest.approx(0.0)
