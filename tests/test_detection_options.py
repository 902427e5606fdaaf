"""The detection task's typed options: parsed once from the run config, the one object the decoder,
the Lightning module, the datamodule and the evaluator take; defaults only in ``DetectionOptions``."""

from __future__ import annotations

import argparse

import pytest
import torch

from backbones.errors import UserError
from benchmark.cli.arguments import add_option_flags
from benchmark.runs.config import resolve_config
from tasks import get_task
from tasks.detection.options import DEFAULTS, DetectionOptions
from tasks.factory import build_model

SMALL = 96
CFG = {"backbone": "mnv2", "width": 0.35, "resolution": SMALL, "num_classes": 3}


def test_a_config_setting_reaches_the_decoder_the_module_and_the_datamodule_as_one_options_object() -> None:
    task = get_task("detection")
    cfg = resolve_config(task, {**CFG, "nms_iou": 0.45, "max_detections": 7, "scoring": "softmax"},
                         shipped_recipes=False)
    model = build_model(task, cfg).eval()
    decoder = task.decoder(model, cfg)
    assert isinstance(decoder.options, DetectionOptions)
    assert (decoder.options.nms_iou, decoder.options.max_detections, decoder.options.scoring) == (0.45, 7, "softmax")
    with torch.no_grad():
        detections = decoder(model(torch.randn(1, 3, SMALL, SMALL)), (SMALL, SMALL))
    assert len(detections[0]["boxes"]) <= 7
    module = task.build_module(dict(cfg, num_workers=0), model)
    assert module.options == decoder.options  # the loss scores as the validation decoder does
    datamodule = task.build_datamodule(dict(cfg, num_workers=0))
    assert datamodule.options == decoder.options  # what the evaluator post-processes with


def test_an_imported_files_post_processing_is_typed() -> None:
    """The keys an imported ``.tflite`` puts in the run config (a YAML list for the box scales)."""
    options = DetectionOptions.from_config({"nms": "fast", "max_classes_per_detection": 2,
                                            "box_scales": [10.0, 10.0, 5.0, 5.0], "label_map": "coco90"})
    assert options.box_scales == (10.0, 10.0, 5.0, 5.0) and options.max_classes_per_detection == 2
    with pytest.raises(UserError, match="box_scales"):
        DetectionOptions.from_config({"box_scales": [10.0, 5.0]})
    with pytest.raises(UserError, match="coco90 needs --num-classes 90"):
        get_task("detection").parse_options({"label_map": "coco90", "num_classes": 80})


@pytest.mark.parametrize("given, flag", [({"nms_iou": 1.5}, "--nms-iou"), ({"label_map": "voc"}, "--label-map"),
                                         ({"pre_nms_top_k": 0}, "pre_nms_top_k")])
def test_a_bad_setting_fails_once_at_the_edge_in_one_line(given: dict, flag: str) -> None:
    with pytest.raises(UserError) as error:
        resolve_config(get_task("detection"), {**CFG, **given}, shipped_recipes=False)
    assert flag in str(error.value) and len(str(error.value).splitlines()) == 1


def test_the_run_config_keeps_its_keys_and_defaults() -> None:
    """Records and leaderboards read these keys: the YAML a run writes is unchanged."""
    assert get_task("detection").defaults() == {
        "head": "ssdlite", "head_width": None, "predictor_kernel": 1, "scoring": "sigmoid", "hard_mining": "tf",
        "random_crop": "ssd", "pre_nms_top_k": 300, "score_threshold": 1e-8, "label_map": None, "nms_iou": 0.6,
        "max_detections": 100, "nms": "class-wise",
    }  # fmt: skip
    assert DetectionOptions() == DEFAULTS


def test_a_files_settings_are_config_keys_not_flags() -> None:
    parser = argparse.ArgumentParser()
    add_option_flags(parser, DetectionOptions)
    flags = {action.dest for action in parser._actions}
    assert {"nms_iou", "scoring", "nms"} <= flags
    assert not flags & {"box_scales", "max_classes_per_detection", "label_map", "pre_nms_top_k"}
