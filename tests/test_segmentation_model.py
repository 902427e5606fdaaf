"""Mobile DeepLabv3: every backbone through the head, Table 7's counts, the exact mIoU, MF inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backbones import list_backbones
from benchmark.cli import main
from tasks import get_task
from tasks.factory import build_model
from tasks.segmentation.inference import forward_padded, groups_by_size, segment
from tasks.segmentation.metrics import confusion_metric, scores_from_confusion
from tasks.segmentation.module import SegmentationModule
from tasks.segmentation.options import parse_scales
from tasks.segmentation.voc import pad_collate

TASK = get_task("segmentation")


def config(**overrides) -> dict:
    cfg = {"backbone": "mnv2", "resolution": 65, "num_classes": 21, **TASK.defaults()}
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize("output_stride", [16, 8])
@pytest.mark.parametrize("backbone", list_backbones())
def test_every_backbone_runs_through_the_head(backbone: str, output_stride: int) -> None:
    model = build_model(TASK, config(backbone=backbone, output_stride=output_stride, aspp=True)).eval()
    # The head reads the backbone's segmentation tap at the requested output stride, with the rates doubled at 8.
    assert model.feature.stride == output_stride
    assert model.head.rates == ((6, 12, 18) if output_stride == 16 else (12, 24, 36))
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 65, 65))
    assert logits.shape == (1, 21, 65, 65) and torch.isfinite(logits).all()


def test_v2_star_reads_the_320_channel_map_and_drops_the_1280_conv() -> None:
    body = build_model(TASK, config())
    last = build_model(TASK, config(feature="last"))
    assert (body.feature.name, body.feature.channels) == ("stride32_body", 320)
    assert (last.feature.name, last.feature.channels) == ("stride32", 1280)
    assert not any(key.startswith("backbone.last_conv") for key in body.state_dict())
    assert any(key.startswith("backbone.last_conv") for key in last.state_dict())
    # Backbone keys keep the backbone's own names (pretrained weights and checkpoints load by them).
    assert "backbone.stem.0.weight" in body.state_dict()


def profile(*flags: str, capsys) -> dict:
    assert main(["profile", "--task", "segmentation", "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_profile_matches_table7_light_head(capsys) -> None:
    result = profile("--backbone", "mnv2", capsys=capsys)
    assert result["resolution"] == 513 and result["output_stride"] == 16 and result["num_classes"] == 21
    assert result["params"] == pytest.approx(2.11e6, rel=0.02)
    assert result["madds"] == pytest.approx(2.75e9, rel=0.05)
    assert result["paper_params"] == 2_110_000 and result["paper_madds"] == 2_750_000_000


@pytest.mark.parametrize("backbone, params, tolerance", [("mnv2", 4.52e6, 0.02), ("mnv1", 11.15e6, 0.03)])
def test_profile_params_with_aspp(backbone: str, params: float, tolerance: float, capsys) -> None:
    result = profile("--backbone", backbone, "--aspp", "--resolution", "129", capsys=capsys)
    assert result["params"] == pytest.approx(params, rel=tolerance)
    assert result["aspp_rates"] == [6, 12, 18]


def test_profile_counts_the_mf_inference_as_table7(capsys) -> None:
    # V2* at output stride 8 with six scales and flips: Table 7's 152.6B MAdds (counted on the meta device).
    mf = ["--eval-scales", "0.5,0.75,1.0,1.25,1.5,1.75", "--eval-flip"]
    result = profile("--backbone", "mnv2", "--output-stride", "8", *mf, capsys=capsys)
    assert result["paper_madds_eval"] == 152_600_000_000 and result["paper_miou"] == 77.33
    assert result["madds_eval"] == pytest.approx(152.6e9, rel=0.01)


def numpy_reference(
    pairs: list[tuple[np.ndarray, np.ndarray]], num_classes: int
) -> tuple[np.ndarray, float, float]:
    """Plain confusion matrix: rows true, columns predicted, void (255) skipped."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for predicted, truth in pairs:
        for p, t in zip(predicted.ravel(), truth.ravel(), strict=True):
            if t != 255:
                confusion[t, p] += 1
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / union
    return confusion, 100.0 * float(np.nanmean(iou)), 100.0 * float(tp.sum() / confusion.sum())


def test_miou_equals_a_plain_confusion_matrix_reference_exactly() -> None:
    rng = np.random.default_rng(0)
    num_classes = 6  # class 5 never occurs: it must drop out of the mean, not count as 0
    metric = confusion_metric(num_classes)
    pairs = []
    for _ in range(3):
        truth = rng.integers(0, 5, size=(2, 17, 23))
        truth[rng.random(truth.shape) < 0.2] = 255
        predicted = np.where(rng.random(truth.shape) < 0.6, truth % 255 % 5, rng.integers(0, 5, truth.shape))
        metric.update(torch.from_numpy(predicted), torch.from_numpy(truth))
        pairs.append((predicted, truth))
    confusion, miou, pixel_acc = numpy_reference(pairs, num_classes)
    scores = scores_from_confusion(metric.compute(), ["bg", "a", "b", "c", "d", "e"])
    assert np.array_equal(metric.compute().numpy(), confusion)
    assert scores["miou"] == miou and scores["pixel_acc"] == pixel_acc
    assert scores["per_class_iou"]["e"] is None and 0 < scores["per_class_iou"]["a"] < 100


class PixelColourModel(torch.nn.Module):
    """Predicts from each pixel's colour and a global term, so padding would change its output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x.mean((1, 2, 3), keepdim=True)


def test_padded_batches_score_each_image_at_its_own_size() -> None:
    torch.manual_seed(0)
    model = PixelColourModel().eval()
    items = [
        (torch.randn(3, h, w), torch.randint(0, 4, (h, w)))
        for h, w in [(20, 30), (33, 17), (20, 30), (40, 41)]
    ]
    images, masks, sizes = pad_collate(items)
    assert sorted(groups_by_size(sizes)) == [(20, 30), (33, 17), (40, 41)]
    module = SegmentationModule(model, 4, class_names=["a", "b", "c", "d"])
    module.validation_step((images, masks, sizes), 0)
    batched = module.confusion.compute()
    alone = confusion_metric(4)
    with torch.no_grad():
        for image, mask in items:
            alone.update(forward_padded(model, image[None]).argmax(1), mask[None])
    assert torch.equal(batched, alone.compute())


def test_mf_averages_probabilities_over_scales_and_flips() -> None:
    torch.manual_seed(0)
    model = PixelColourModel().eval()
    images = torch.randn(2, 3, 24, 36)
    with torch.no_grad():
        plain = segment(model, images)
        mf = segment(model, images, (0.5, 1.0, 1.5), flip=True)
    assert plain.shape == mf.shape == (2, 4, 24, 36)
    assert torch.allclose(mf.sum(1), torch.ones(2, 24, 36), atol=1e-5)  # averaged probabilities
    assert parse_scales("0.5, 0.75,1.0") == (0.5, 0.75, 1.0) and parse_scales([1, 2]) == (1.0, 2.0)


@pytest.mark.parametrize(
    "flags, message",
    [(["--eval-scales", "a,b"], "--eval-scales"), (["--eval-scales", "-1"], "between 0 and 4")],
)
def test_bad_eval_scales_are_one_line_errors(flags: list[str], message: str, capsys) -> None:
    assert main(["profile", "--task", "segmentation", "--resolution", "64", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_the_tasks_options_reach_the_module_as_one_object() -> None:
    """``SegmentationTask.parse_options`` builds them once; validation scores with their scales and flip."""
    task = get_task("segmentation")
    cfg = {"num_classes": 4, "eval_scales": "0.5,1.0", "eval_flip": True, "optimizer": "sgd", "lr": 0.1,
           "weight_decay": 0.0, "momentum": 0.9, "schedule": "step", "lr_decay": 0.98, "warmup_epochs": 0.0}
    module = task.build_module(cfg, PixelColourModel())
    assert module.options == task.parse_options(cfg) and module.options.eval_scales == (0.5, 1.0)
    assert task.defaults()["eval_scales"] == "1.0"  # the run config's YAML keeps the flag's text
