"""``bench eval --compare-float`` on the official files: the float graph against the float import,
the report's two ends against the plain evaluations, and a corrupted layer found as the worst."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils import _pytree as pytree

if not os.environ.get("BENCH_REALDATA"):
    pytest.skip("BENCH_REALDATA is not set (real ImageNet slice and official checkpoints)", allow_module_level=True)

from PIL import Image

from tasks import get_task
from tasks.preprocessing import central_crop, mean_std, pil_bilinear_resize
from tasks.tflite.compare import compare_float, unrounded
from tasks.tflite.float_graph import FloatTFLite
from tasks.tflite.int8 import QuantizedTFLite
from tasks.tflite.integer_model import IntegerTFLiteModel
from tasks.tflite.mixed import MixedTFLite
from tasks.tflite.outputs import match_reference
from tasks.tflite.reader import read_tflite

REALDATA = Path(os.environ["BENCH_REALDATA"])
V1 = REALDATA / "weights" / "mobilenet_v1_0.25_128_quant.tflite"
IMAGES = 8


@pytest.fixture(scope="module")
def imagenet_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The slice's first images, symlinked into an ImageNet layout."""
    root = tmp_path_factory.mktemp("imagenet")
    for image in sorted((REALDATA / "imagenet" / "val").glob("*/*.JPEG"))[:IMAGES]:
        link = root / "val" / image.parent.name / image.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image)
    return root


@pytest.mark.parametrize(("name", "task"), [("mobilenet_v1_0.25_128_quant", "classification"),
                                            ("ssd_mobilenet_v1_coco_quant", "detection")])
def test_float_graph_equals_the_float_import(name: str, task: str) -> None:
    """Op by op in float (the SSD's ReLU6 read off its output ranges) = the suite's imported module, fed
    the same dequantized input bytes."""
    path = REALDATA / "weights" / f"{name}.tflite"
    graph = read_tflite(path)
    floats = FloatTFLite(graph)
    model, _ = get_task(task).import_tflite(str(path))
    size = graph.input.shape[1]
    images = sorted((REALDATA / "imagenet" / "val").glob("*/*.JPEG"))[:2]
    pixels = np.concatenate([pil_bilinear_resize(central_crop(np.asarray(Image.open(i).convert("RGB"))), size)[None]
                             for i in images])
    raw_ids, final_op = QuantizedTFLite(graph).raw_outputs()
    if final_op == "TFLite_Detection_PostProcess":  # compare logits, not 8-bit-free sigmoids near 1
        raw_ids[0] = graph.producer(raw_ids[0]).inputs[0]
    raw, _ = floats.run(pixels, raw_ids)
    with torch.no_grad():
        expected = [t for t in pytree.tree_leaves(model.eval()(floats.dequantize_input(pixels).permute(0, 3, 1, 2)))]
    for ours, theirs in zip(match_reference(raw, expected, final_op), expected, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-4), float((ours - theirs).abs().max())


def test_bench_eval_compare_float_reports_the_chosen_layers(imagenet_subset: Path, tmp_path: Path, capsys) -> None:
    """The report's integer metric is bench eval's on the same images (no layer in float); its float
    metric is the float graph's evaluated on its own; the four ops whose error alone is largest get
    both kept-in-float metrics (the logits among them: the RESHAPE after them stays float unrounded)."""
    from benchmark.cli import main
    from tasks.evaluate import evaluate

    out = tmp_path / "out"
    code = main(["eval", "--task", "classification", "--weights", str(V1), "--data", str(imagenet_subset),
                 "--runtime", "tflite-int8", "--compare-float", "--compare-images", str(IMAGES),
                 "--compare-layers", "4", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "compare-float: mobilenet_v1_0.25_128_quant.tflite" in printed and "float op / unrounded for 4 of 30" in printed
    result = json.loads((out / "result.json").read_text())
    report = json.loads((out / "compare-float.json").read_text())
    assert report["images"] == result["images"] == IMAGES
    assert {k: round(v, 4) for k, v in report["metrics"]["integer"].items()} == result["metrics"]

    task = get_task("classification")
    float_model, facts = task.import_tflite(str(V1))
    integer = IntegerTFLiteModel(V1, float_model, mean_std("tf-inception"))
    floats = FloatTFLite(integer.engine.graph)
    raw_ids, _ = integer.engine.raw_outputs()

    class FloatGraph(nn.Module):
        def forward(self, x: torch.Tensor):
            return integer.outputs(floats.run(integer.to_pixels(x), raw_ids)[0], x, quantized=False)

    cfg = {"data": str(imagenet_subset), "resolution": 128, "batch_size": 4, "num_workers": 0, "preset": "tf-inception"}
    alone = evaluate(task, FloatGraph(), task.build_datamodule(cfg), bootstrap=1).metrics
    assert report["metrics"]["float"] == alone

    rows = {row["op"]: row for row in report["layers"]}
    ranked = sorted((r for r in rows.values() if r["error_alone_pct"] is not None), key=lambda r: -r["error_alone_pct"])
    assert report["kept_in_float_ops"] == [r["op"] for r in ranked[:4]]
    for variant in ("kept_in_float", "unrounded"):
        assert sorted(op for op, row in rows.items() if row[variant]) == sorted(report["kept_in_float_ops"])
    logits = next(row for row in rows.values() if row["shape"] == [1, 1, 1, 1001])
    assert logits["kept_in_float"]["ops_in_float"] == [logits["op"]]
    assert logits["unrounded"]["ops_in_float"] == [logits["op"], logits["op"] + 1]  # through the RESHAPE
    assert logits["max_abs_error_steps"] > 2  # the uint8 logits clip; the report shows it
    csv_lines = (out / "compare-float.csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1 and csv_lines[0].startswith("op,kind,tensor,shape,scale")


def test_a_coarsened_layer_is_found_as_the_worst(imagenet_subset: Path) -> None:
    """One mid-network output's scale made 8x coarser in the file: its rounding alone costs most, it is
    chosen first, keeping its output unrounded recovers most, and its isolated SQNR is the lowest;
    run in float but quantized to that coarse grid again, it recovers nothing."""
    graph = read_tflite(V1)
    target, reader = graph.convs()[12], graph.convs()[13]
    tensors, stored = dict(graph.tensors), dict(graph.stored)
    for index in (target.outputs[0], reader.inputs[2]):  # the reader's int32 bias is at input x weight scale
        info = tensors[index]
        tensors[index] = dataclasses.replace(info, scale=info.scale * 8, scales=tuple(s * 8 for s in info.scales))
    stored[reader.inputs[2]] = np.round(stored[reader.inputs[2]] / 8).astype(np.int32)
    graph = dataclasses.replace(graph, tensors=tensors, stored=stored)

    task = get_task("classification")
    float_model, _ = task.import_tflite(str(V1))
    model = IntegerTFLiteModel(graph, float_model, mean_std("tf-inception"))
    cfg = {"data": str(imagenet_subset), "resolution": 128, "batch_size": 4, "num_workers": 0, "preset": "tf-inception"}
    datamodule = task.build_datamodule(cfg)
    datamodule.setup("validate")
    report = compare_float(task, model, datamodule, images=IMAGES, layers=2).as_dict()

    rows = [row for row in report["layers"] if row["error_alone_pct"] is not None]
    assert report["kept_in_float_ops"][0] == target.index
    assert max(rows, key=lambda r: r["error_alone_pct"])["op"] == target.index
    assert min(rows, key=lambda r: r["isolated_sqnr_db"])["op"] == target.index
    chosen = [row for row in rows if row["unrounded"]]
    assert min(chosen, key=lambda r: r["unrounded"]["output_error_left_pct"])["op"] == target.index
    coarse_row = next(row for row in chosen if row["op"] == target.index)
    assert coarse_row["unrounded"]["output_error_left_pct"] < 70 < coarse_row["kept_in_float"]["output_error_left_pct"]
    assert unrounded(MixedTFLite(model.engine), target.index) == {target.index, target.index + 1}


def test_compare_float_on_a_float_file_is_one_line(tmp_path: Path, capsys) -> None:
    from benchmark.cli import main

    code = main(["eval", "--task", "segmentation", "--weights", str(REALDATA / "weights" / "deeplabv3_257_mv_gpu.tflite"),
                 "--data", str(REALDATA / "voc"), "--runtime", "tflite-int8", "--compare-float"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("weights:")]
    assert code == 2 and len(err) == 1 and "integer execution needs a quantized (uint8/int8) file" in err[0]
