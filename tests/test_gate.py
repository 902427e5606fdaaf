"""The latency accuracy gate's verdicts: ratio AND agreement targets, detection on COCO mAP alone,
"not judged" against a weak reference; on real data (``BENCH_REALDATA``) it flags a broken model
of every task and passes a faithful one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from benchmark.latency.gate import FAIL, NOT_JUDGED, PASS, EagerReference, gate_verdict, run_gate
from benchmark.latency.runtimes.tflite_file import raw_output_tensors
from tasks.factory import build_model
from tasks.facts import weak_reference
from tasks.provenance import weights_provenance
from tasks.tflite.outputs import match_reference


def test_classification_needs_the_ratio_and_the_agreement() -> None:
    assert gate_verdict("classification", "top1", 70.5, 71.0, 96.0, 1000).verdict == PASS
    ratio_low = gate_verdict("classification", "top1", 70.0, 71.0, 99.0, 1000)  # 0.986 < 0.99
    assert ratio_low.verdict == FAIL and ratio_low.flagged and "ratio 0.986" in ratio_low.reason
    agree_low = gate_verdict("classification", "top1", 71.0, 71.0, 94.9, 1000)  # the metric held, labels moved
    assert agree_low.verdict == FAIL and "agreement 94.9 % < 95 %" in agree_low.reason
    assert gate_verdict("classification", "top1", 71.0, 71.0, None, 1000).verdict == FAIL


def test_segmentation_targets() -> None:
    assert gate_verdict("segmentation", "miou", 73.0, 75.0, 97.5, 21).verdict == PASS  # 0.973
    assert gate_verdict("segmentation", "miou", 72.0, 75.0, 99.0, 21).verdict == FAIL  # 0.96
    assert gate_verdict("segmentation", "miou", 75.0, 75.0, 96.9, 21).verdict == FAIL


def test_detection_is_judged_on_coco_map_alone() -> None:
    assert gate_verdict("detection", "map", 19.5, 20.0, None, 90).verdict == PASS  # 0.975
    failed = gate_verdict("detection", "map", 19.3, 20.0, None, 90)  # 0.965 < 0.97
    assert failed.verdict == FAIL and failed.basis == "map ratio"
    # no per-anchor arg-max fallback: agreement, given or not, neither passes nor fails a detector
    assert gate_verdict("detection", "map", 19.3, 20.0, 100.0, 90).verdict == FAIL
    assert gate_verdict("detection", "map", 20.0, 20.0, 0.0, 90).verdict == PASS


def test_weak_reference_is_not_judged_and_never_passes() -> None:
    # 8 classes: chance 12.5 %, an untrained model near it cannot judge a runtime, even at 100 % agreement
    weak = gate_verdict("classification", "top1", 20.0, 20.0, 100.0, 8)
    assert weak.verdict == NOT_JUDGED and weak.flagged and "2x chance" in weak.reason
    assert gate_verdict("classification", "top1", 26.0, 26.0, 100.0, 8).verdict == PASS
    assert gate_verdict("classification", "top1", 0.0, 0.0, 100.0, 1000).verdict == NOT_JUDGED  # below the floor
    assert gate_verdict("segmentation", "miou", 9.0, 9.0, 100.0, 21).verdict == NOT_JUDGED
    assert gate_verdict("detection", "map", 0.3, 0.3, None, 90).verdict == NOT_JUDGED
    assert weak_reference("detection", 20.4, 90) is None


def test_weights_provenance(tmp_path: Path) -> None:
    assert weights_provenance({"weights": None}) == {"source": "random init", "file": None, "sha256": None}
    file = tmp_path / "m.tflite"
    file.write_bytes(b"abc")
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert weights_provenance({"weights": str(file)}) == {"source": "tflite", "file": "m.tflite", "sha256": sha}
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"abc")
    assert weights_provenance({"weights": str(file)}, str(ckpt))["source"] == "checkpoint"


def test_tflite_raw_outputs_are_read_before_the_post_processing_op() -> None:
    ops = [
        {"op_name": "CONV_2D", "inputs": [0], "outputs": [1]},
        {"op_name": "LOGISTIC", "inputs": [1], "outputs": [2]},
        {"op_name": "TFLite_Detection_PostProcess", "inputs": [3, 2, 4], "outputs": [5, 6, 7, 8]},
    ]
    assert raw_output_tensors(ops, {5, 6, 7, 8}) == ([1, 3], "TFLite_Detection_PostProcess")
    assert raw_output_tensors([{"op_name": "SOFTMAX", "inputs": [9], "outputs": [10]}], {10}) == ([9], "SOFTMAX")
    # conventions: background logit dropped, NHWC logits to NCHW, TF box codes (ty, tx, th, tw) reordered
    logits = torch.arange(6.0).view(1, 6)
    assert match_reference([logits], [torch.zeros(1, 5)], "SOFTMAX")[0].tolist() == [[1, 2, 3, 4, 5]]
    nhwc = torch.rand(1, 4, 4, 21)
    assert torch.equal(match_reference([nhwc], [torch.zeros(1, 21, 4, 4)], "ARG_MAX")[0], nhwc.permute(0, 3, 1, 2))
    codes = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    out = match_reference([torch.zeros(1, 1, 3), codes], [torch.zeros(1, 1, 3), torch.zeros(1, 1, 4)],
                          "TFLite_Detection_PostProcess")
    assert out[1].tolist() == [[[2.0, 1.0, 4.0, 3.0]]]


# --------------------------------------------------------------------------------------------
# real data: official weights, a faithful runtime passes, a broken one is flagged, every task
# --------------------------------------------------------------------------------------------
REALDATA = Path(os.environ.get("BENCH_REALDATA", ""))
needs_realdata = pytest.mark.skipif(
    not os.environ.get("BENCH_REALDATA") or not (REALDATA / "weights").is_dir(), reason="BENCH_REALDATA is not set"
)


def broken_classification(out):  # a wrong output: the classes shifted by one
    return out.roll(1, dims=1)


def broken_segmentation(out):  # foreground logits scaled down: background wins where it should not
    out = out.clone()
    out[:, 1:] = out[:, 1:] * 0.5 - 2.0
    return out


def broken_detection(out):  # class logits shifted by one category
    logits, boxes = out
    return logits.roll(1, dims=-1), boxes


CASES = {
    "classification": ("mobilenet_v2_1.0_224_quant.tflite", "imagenet", 48, broken_classification),
    "segmentation": ("deeplabv3_mnv2_dm05_pascal_quant.tflite", "voc", 6, broken_segmentation),
    "detection": ("ssd_mobilenet_v1_coco_quant.tflite", "coco", 24, broken_detection),
}


@needs_realdata
@pytest.mark.parametrize("task_name", list(CASES))
def test_gate_flags_a_broken_model_and_passes_a_faithful_one(task_name: str) -> None:
    from benchmark.runs.config import resolve_config
    from tasks import get_task

    file, data, images, breaks = CASES[task_name]
    task = get_task(task_name)
    cfg = resolve_config(task, {"weights": str(REALDATA / "weights" / file), "data": str(REALDATA / data)})
    cfg.update(num_workers=0, batch_size=8)
    model = build_model(task, cfg).eval()
    reference = EagerReference(model)
    run_gate(task, cfg, reference, None, images)

    seen: dict[bytes, object] = {}

    def outputs(x):  # each batch through the model once: the two judged runtimes only alter its outputs
        key = hashlib.sha1(x.numpy().tobytes()).digest()
        if key not in seen:
            with torch.no_grad():
                seen[key] = model(x)
        return seen[key]

    def faithful(x):
        out = outputs(x)
        return (out[0] + 1e-5, out[1]) if isinstance(out, tuple) else out + 1e-5

    def broken(x):
        return breaks(outputs(x))

    good = run_gate(task, cfg, reference, faithful, images)
    assert good.verdict == PASS and good.ratio == pytest.approx(1.0, abs=1e-3), good
    bad = run_gate(task, cfg, reference, broken, images)
    assert bad.verdict == FAIL and bad.flagged, bad
    assert bad.ratio < good.threshold


@needs_realdata
def test_latency_with_tflite_weights_keeps_the_files_input_size(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from benchmark.cli import main

    ssd = REALDATA / "weights" / "ssd_mobilenet_v1_coco_quant.tflite"
    code = main(["latency", "--task", "detection", "--weights", str(ssd), "--runtime", "eager", "--accuracy-images", "0",
                 "--tier", "quick", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "2", "--min-seconds", "0",
                 "--json", "--output", str(tmp_path)])
    assert code == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["resolution"] == 300 and record["num_classes"] == 90  # the file's, not the task's default 320
    assert record["weights"]["source"] == "tflite" and len(record["weights"]["sha256"]) == 64
