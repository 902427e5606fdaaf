"""--channels-last trains in NHWC: the same math as NCHW (to float rounding), a faster layout on CPU."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from test_detection_data import TINY, write_coco

from benchmark.cli import main
from benchmark.runs.config import resolve_config
from tasks import get_task
from tasks.base import BenchModule
from tasks.factory import build_model


def test_batches_go_nhwc_and_targets_stay() -> None:
    module = BenchModule(torch.nn.Conv2d(3, 4, 3), channels_last=True)
    batch = {"images": torch.randn(2, 3, 8, 8), "targets": [{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1)}],
             "masks": torch.zeros(2, 8, 8, dtype=torch.int64)}
    moved = module.on_after_batch_transfer(batch, 0)
    pair = module.on_after_batch_transfer([batch["images"], torch.zeros(2)], 0)
    assert pair[0].is_contiguous(memory_format=torch.channels_last) and pair[1].shape == (2,)
    assert moved["images"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(moved["images"], batch["images"]) and moved["masks"] is batch["masks"]
    assert moved["targets"][0]["boxes"] is batch["targets"][0]["boxes"]
    assert BenchModule(torch.nn.Conv2d(3, 4, 3)).on_after_batch_transfer(batch, 0) is batch


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_nhwc_gradients_are_as_exact_as_nchw(mode: str) -> None:
    """Against float64, the detector's gradients in NHWC err as little as in NCHW.

    In evaluation mode both are within about 2e-7. In training mode the batch statistics of the 1x1
    and 2x2 maps (4 values each) amplify rounding to 0.4 % (NCHW) and 1 % (NHWC, whose kernels sum
    in another order), so the bound there is NCHW's own error, within a small factor: a layout that
    mixed up channels and pixels would be off by order one. Measured on 2 threads (the suite's count):
    NCHW 0.0044, NHWC 0.0099; on 1 thread oneDNN's NHWC backward errs more (0.074, NCHW still 0.0044),
    so the test pins 2."""
    if torch.get_num_threads() != 2:
        pytest.skip("the bound is measured on 2 threads (tests/conftest.py sets them)")
    task = get_task("detection")
    cfg = resolve_config(task, {"backbone": "mnv2", "width": 0.35, "resolution": 96, "num_classes": 3})
    torch.manual_seed(0)
    model = build_model(task, cfg).train(mode == "train")
    images = torch.randn(4, 3, 96, 96)
    grads = {}
    for layout in ("float64", "nchw", "nhwc"):
        copied = copy.deepcopy(model)
        x = images
        if layout == "float64":
            copied, x = copied.double(), images.double()
        elif layout == "nhwc":
            copied, x = copied.to(memory_format=torch.channels_last), images.contiguous(memory_format=torch.channels_last)
        class_logits, boxes = copied(x)
        (class_logits.logsumexp(-1).sum() + boxes.square().sum()).backward()
        grads[layout] = torch.cat([p.grad.double().flatten() for p in copied.parameters()])
    reference = grads["float64"]
    error = {layout: float((grads[layout] - reference).norm() / reference.norm()) for layout in ("nchw", "nhwc")}
    if mode == "eval":
        assert error["nchw"] < 1e-6 and error["nhwc"] < 1e-6, error
    else:
        assert error["nchw"] < 0.02 and error["nhwc"] < 4 * error["nchw"], error


def test_cli_run_with_channels_last(tmp_path: Path) -> None:
    coco = write_coco(tmp_path / "coco")
    out = tmp_path / "run"
    code = main(["run", "--task", "detection", "--backbone", "mnv2", "--width", "0.35", "--data", str(coco), *TINY,
                 "--max-steps", "2", "--channels-last", "--output", str(out)])
    assert code == 0
    assert json.loads((out / "result.json").read_text())["config"]["channels_last"] is True
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["model.backbone.stem.0.weight"].is_contiguous(memory_format=torch.channels_last)
    # The checkpoint evaluates and predicts like any other (its weights load into an NCHW model).
    code = main(["predict", "--task", "detection", "--checkpoint", str(out / "checkpoints" / "last.ckpt"),
                 "--out", str(tmp_path / "pictures"), str(coco / "val2017" / "000000000007.jpg")])
    assert code == 0 and (tmp_path / "pictures" / "000000000007_pred.png").is_file()


def test_fused_adamw_on_nhwc_weights_steps_as_the_loop() -> None:
    """The recipes' AdamW is the fused kernel, which walks memory: NHWC weights, gradients and moments
    must line up, so three steps give the per-tensor loop's weights."""
    task = get_task("detection")
    cfg = resolve_config(task, {"backbone": "mnv2", "width": 0.35, "resolution": 64, "num_classes": 3})
    torch.manual_seed(0)
    model = build_model(task, cfg).eval().to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    trained = {}
    for fused in (False, True):
        copied = copy.deepcopy(model)
        optimizer = torch.optim.AdamW(copied.parameters(), 1e-2, fused=fused)
        for _ in range(3):
            class_logits, boxes = copied(images)
            optimizer.zero_grad()
            (class_logits.logsumexp(-1).mean() + boxes.square().mean()).backward()
            optimizer.step()
        trained[fused] = torch.cat([p.detach().flatten() for p in copied.parameters()])
    assert (trained[True] - trained[False]).abs().max() < 1e-5
    assert (trained[True] - torch.cat([p.flatten() for p in model.parameters()])).abs().max() > 1e-3  # it moved


def test_a_recipe_value_that_is_not_a_switch_is_one_line(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("channels_last: sometimes\n")
    code = main(["run", "--task", "detection", "--data", str(write_coco(tmp_path / "coco")), *TINY,
                 "--config", str(recipe), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "channels_last" in err and "'sometimes'" in err, err
    assert not (tmp_path / "out").exists()
