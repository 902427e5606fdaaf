"""The official SSD MobileNetV1 0.75 .tflite imported into the suite's SSD, on the real COCO slice.

LiteRT itself scores mAP 20.41 on these 80 images with its 10 detections per image
(``$BENCH_REALDATA/README.md``); the suite, capped at 10 too, must land within 2 points.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

if not os.environ.get("BENCH_REALDATA"):
    pytest.skip("BENCH_REALDATA is not set (real COCO slice and official checkpoints)", allow_module_level=True)

from backbones.errors import UserError
from tasks import get_task
from tasks.evaluate import evaluate
from tasks.factory import build_model

REALDATA = Path(os.environ["BENCH_REALDATA"])
SSD = REALDATA / "weights" / "ssd_mobilenet_v1_coco_quant.tflite"
LITERT_MAP_AT_10 = 20.41


def config(**overrides) -> dict:
    task = get_task("detection")
    cfg = dict(task.defaults(), backbone="mnv1", width=0.75, head="ssd", num_classes=90, resolution=300,
               weights=str(SSD), preset="tf-ssd", label_map="coco90", data=str(REALDATA / "coco"),
               batch_size=16, num_workers=0, on_bad_sample="error")
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(get_task("detection"), config())


def test_imported_ssd_reaches_litert_map_on_the_coco_slice(model) -> None:
    task = get_task("detection")
    at10 = evaluate(get_task("detection"), model, task.build_datamodule(config(max_detections=10)), bootstrap=200)
    assert at10.images == 80
    assert abs(at10.metrics["map"] - LITERT_MAP_AT_10) <= 2.0, at10.metrics
    low, high = at10.ci95["map"]
    assert low < at10.metrics["map"] < high
    # 100 detections (TF's config) can only add recall.
    at100 = task.evaluate_callable(model, config(max_detections=100),
                                   decoder=task.decoder(model, config(max_detections=100)))
    assert at100["map"] >= at10.metrics["map"]


def test_a_file_for_another_width_names_the_first_mismatching_layer() -> None:
    with pytest.raises(UserError, match=r"op 0 CONV_2D \[24, 3, 3, 3\] does not fit the model's backbone\.stem\.0"):
        build_model(get_task("detection"), config(width=1.0))


def test_the_files_post_processing_is_read_and_is_the_eval_default(tmp_path: Path, capsys) -> None:
    """TFLite_Detection_PostProcess's FlexBuffer options become bench eval's settings and the record's."""
    import json

    from cli_helpers import completed

    _, report = get_task("detection").import_tflite(str(SSD))
    assert report.postprocess == {
        "detections_per_class": 100, "h_scale": 5.0, "max_classes_per_detection": 1, "max_detections": 10,
        "nms_iou_threshold": 0.6, "nms_score_threshold": 1e-08, "num_classes": 90, "use_regular_nms": False,
        "w_scale": 5.0, "x_scale": 10.0, "y_scale": 10.0,
    }  # fmt: skip
    assert report.evaluation == {"nms": "fast", "max_detections": 10, "nms_iou": 0.6, "score_threshold": 1e-08,
                                 "max_classes_per_detection": 1, "box_scales": [10.0, 10.0, 5.0, 5.0]}
    out = completed(["eval", "--task", "detection", "--weights", str(SSD), "--data", str(REALDATA / "coco"),
                     "--output", str(tmp_path)], capsys)
    assert out.returncode == 0, out.stderr
    assert "post-processing from the file: detections_per_class 100" in out.stderr
    assert "settings: max_detections 10, nms_iou 0.6" in out.stdout
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["settings"]["nms"] == "fast" and record["settings"]["max_detections"] == 10
    assert record["weights"]["postprocess_options"] == report.postprocess
    # The file's fast NMS and anchors bring the float import near LiteRT's 20.41 (measured 20.61; the
    # 8-bit scores and codes through xnnpack-int8: 20.41 exactly).
    assert abs(record["metrics"]["map"] - LITERT_MAP_AT_10) <= 0.7, record["metrics"]
    # The latency gate's eager reference decodes the same way: the same mAP on the same 80 images.
    timed = completed(["latency", "--task", "detection", "--weights", str(SSD), "--data", str(REALDATA / "coco"),
                       "--runtime", "eager", "--tier", "quick", "--min-runs", "2", "--accuracy-images", "80", "--json",
                       "--output", str(tmp_path / "latency")], capsys)
    assert timed.returncode == 0, timed.stderr
    gate = json.loads(timed.stdout)[0]["accuracy"]
    assert gate["images"] == 80 and round(gate["value"], 4) == record["metrics"]["map"], gate


# COCO images where the suite's old decoding (TF's generated anchors, boxes clipped) picked other
# detections than the file's op, not only other box corners.
OP_IMAGES = ("000000208901.jpg", "000000547336.jpg")


def test_integer_ssd_detections_are_the_files_op_output() -> None:
    """``--runtime xnnpack-int8``'s detections (the suite's decode + fast NMS on the integer engine's
    raw outputs) are LiteRT's TFLite_Detection_PostProcess output on the same bytes: same classes and
    scores in the same order, boxes up to float rounding."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from tasks.detection.decoder import DetectionDecoder
    from tasks.detection.options import DetectionOptions
    from tasks.preprocessing import mean_std
    from tasks.tflite.integer_model import IntegerTFLiteModel

    model, report = get_task("detection").import_tflite(str(SSD))
    integer = IntegerTFLiteModel(SSD, model, mean_std("tf-ssd"), arithmetic="xnnpack")
    litert = Interpreter(model_path=str(SSD))  # the default interpreter: the reference numbers' runtime
    litert.allocate_tensors()
    mean, std = integer.mean, integer.std
    for name in OP_IMAGES:
        image = Image.open(REALDATA / "coco" / "val2017" / name).convert("RGB").resize((300, 300), Image.BILINEAR)
        pixels = np.asarray(image)[None]
        batch = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
        assert np.array_equal(integer.to_pixels(batch), pixels)
        ours = DetectionDecoder(model.anchors, DetectionOptions.from_config(report.evaluation))(
            integer(batch), (300, 300))[0]
        litert.set_tensor(litert.get_input_details()[0]["index"], pixels)
        litert.invoke()
        boxes, classes, scores, count = (litert.get_tensor(d["index"]) for d in litert.get_output_details())
        n = int(count[0])
        assert ours["labels"].tolist() == classes[0, :n].astype(int).tolist(), name
        assert torch.allclose(ours["scores"], torch.from_numpy(scores[0, :n]), rtol=0, atol=1e-6), name
        # The op's (ymin, xmin, ymax, xmax) are normalised and unclipped.
        expected = torch.from_numpy(boxes[0, :n][:, [1, 0, 3, 2]] * 300.0)
        assert torch.allclose(ours["boxes"], expected, rtol=0, atol=1e-3), name


def test_predict_and_the_latency_gate_decode_the_ssd_file_as_eval_does() -> None:
    """One decoder: `bench predict` and the latency gate read the file's anchors and post-processing
    (fast NMS, 10 detections), as `bench eval` does (its mAP equals the gate's: the test above)."""
    from benchmark.runs.config import resolve_config
    from tasks.loading import load_file

    task = get_task("detection")
    loaded = load_file(task, str(SSD))
    predict_cfg, model = loaded.config, loaded.model
    latency_cfg = resolve_config(task, {"weights": str(SSD), "data": str(REALDATA / "coco")}, shipped_recipes=False)
    decoders = [task.decoder(model, cfg) for cfg in (predict_cfg, latency_cfg)]
    assert decoders[0].options == decoders[1].options
    assert (decoders[0].options.nms, decoders[0].options.max_detections) == ("fast", 10)
    imported = model.anchors((300, 300))
    assert torch.equal(decoders[1].anchors((300, 300), "cpu"), imported)



def test_every_command_imports_the_file_once_and_its_facts_build_nothing(monkeypatch) -> None:
    """One loader: a config read from the file builds no model; eval/latency/export (resolve_model) and
    predict (load_file) import the file exactly once, and their provenance names it and its import."""
    from benchmark.runs.config import resolve_config, resolve_model
    from tasks.loading import load_file

    task = get_task("detection")
    imports: list[str] = []
    original = type(task).import_tflite
    monkeypatch.setattr(type(task), "import_tflite", lambda self, path, **kw: imports.append(path) or original(self, path, **kw))
    cfg = resolve_config(task, {"weights": str(SSD)}, shipped_recipes=False)
    assert imports == [] and (cfg["backbone"], cfg["width"], cfg["num_classes"], cfg["max_detections"]) == ("mnv1", 0.75, 90, 10)
    loaded = resolve_model(task, {"weights": str(SSD), "data": str(REALDATA / "coco")})
    assert imports == [str(SSD)] and not loaded.model.training
    assert loaded.weights["source"] == "tflite" and loaded.weights["file"] == SSD.name
    assert loaded.weights["layers"] == loaded.report.layers > 0 and len(loaded.weights["sha256"]) == 64
    predicted = load_file(task, str(SSD))
    assert imports == [str(SSD)] * 2 and predicted.weights == loaded.weights
