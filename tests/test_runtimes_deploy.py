"""litert, openvino (fp32 and int8) against eager, any .tflite file as a timed callable, export_model
and its sidecar, and a missing package naming the extra to install."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from backbones.classifier import create_classifier
from benchmark.latency import runtimes
from benchmark.latency.runtimes.export import export_model, rebatch, write_sidecar
from benchmark.latency.runtimes.litert import prepare_tflite_file

SIZE = 96


def smooth_images(count: int, seed: int) -> torch.Tensor:
    """Images that differ in content, not only in noise (i.i.d. noise pools to the same features)."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.randn(count, 3, 6, 6, generator=generator) * 1.5
    return F.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """MobileNetV2 0.35 with BatchNorm statistics measured on images (random init alone saturates
    ReLU6 and gives the same logits for every input)."""
    torch.manual_seed(0)
    net = create_classifier("mnv2", width=0.35, num_classes=10)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        net(smooth_images(32, 9))
    return net.eval()


def needs(name: str) -> None:
    reason = runtimes.get_runtime(name).unavailable_reason()
    if reason:
        pytest.skip(f"{name}: {reason}")


@pytest.mark.parametrize("name", ["litert", "openvino", "litert-int8", "openvino-int8"])
def test_runtime_matches_eager(model, name: str) -> None:
    needs(name)
    images = smooth_images(6, 1)
    calibration = [smooth_images(8, 2), smooth_images(8, 3)]
    with torch.no_grad():
        reference = model(images)
    assert reference.std(0).mean() > 0.1  # the logits depend on the image
    prepared = runtimes.get_runtime(name).prepare(model, images[:1], threads=1, calibration=calibration)
    outputs = torch.cat([prepared(images[i : i + 1]) for i in range(images.shape[0])])
    assert outputs.shape == reference.shape and outputs.dtype == torch.float32
    scale = reference.abs().max()
    prepared.bind(images[:1])()  # the timed call runs
    if name.endswith("-int8"):
        # A random-weight net is a hard case for 8 bits (ONNX Runtime's int8 lands at the same
        # cosine); wrong scales or layouts give ~0.
        cosine = F.cosine_similarity(outputs, reference).min()
        assert cosine > 0.6, (name, float(cosine))
    else:
        assert (outputs - reference).abs().max() < 1e-4 * scale, name
    if name.startswith("litert"):
        details = prepared.details
        assert details["delegate_nodes"] >= 1  # XNNPACK took the graph
        assert details["input"]["dtype"] == ("int8" if name.endswith("-int8") else "float32")


def test_official_tflite_file_and_its_weights_in_the_suite_model() -> None:
    """A given uint8 file runs on float NCHW input (quantized, transposed to its NHWC), and the same
    weights loaded into the suite's model pick the same classes on real images."""
    root = os.environ.get("BENCH_REALDATA")
    if not root:
        pytest.skip("BENCH_REALDATA is not set")
    needs("litert")
    from benchmarks.deploy_compare import SUBJECTS, prepare_subject

    subject = SUBJECTS["mnv2-224"]
    data = prepare_subject(subject, Path(root))  # the suite's model with the file's weights, its preset's images
    images = data.check[::25]  # 8 images over many classes
    official = prepare_tflite_file(Path(root) / subject.weights, threads=1)
    assert official.details["input"]["dtype"] == "uint8" and official.static_batch == 1
    probabilities = torch.cat([official(images[i : i + 1]) for i in range(images.shape[0])])
    assert probabilities.shape == (8, 1001) and ((probabilities.sum(1) - 1).abs() < 0.1).all()  # uint8 softmax, 1/256 steps
    with torch.no_grad():
        logits = data.model(images)
    # The suite drops the file's background logit 0: suite class i is file logit i + 1.
    assert (logits.argmax(1) + 1 == probabilities.argmax(1)).float().mean() >= 7 / 8


def test_export_writes_the_files_and_sidecar(model, tmp_path: Path) -> None:
    needs("openvino-int8")
    example = smooth_images(1, 4)
    result = export_model(model, example, "openvino", int8=True, calibration=[smooth_images(4, 5)], out_path=tmp_path / "m.xml")
    assert result["format"] == "openvino" and result["precision"] == "int8" and result["ir_bytes"] > 0
    assert (tmp_path / "m.xml").is_file() and (tmp_path / "m.bin").is_file()
    onnx = export_model(model, example, "onnx", out_path=tmp_path / "m.onnx")
    assert onnx["batchnorm_nodes_left"] == 0
    labels = [f"class {i}" for i in range(10)]
    sidecar = write_sidecar(tmp_path / "m.onnx", example=example, fmt="onnx", int8=False, mean=(0.5,) * 3, std=(0.25,) * 3, labels=labels)
    data = json.loads(sidecar.read_text())
    assert sidecar.name == "m.json" and data["input"]["shape"] == [1, 3, SIZE, SIZE] and data["labels"] == labels
    assert data["input"]["normalization"]["std"] == [0.25] * 3 and data["precision"] == "fp32" and data["commit"]
    from backbones.errors import UserError

    with pytest.raises(UserError, match="suffix .tflite"):
        export_model(model, example, "tflite", out_path=tmp_path / "m.onnx")


def test_rebatch_regroups_to_the_static_batch() -> None:
    batches = rebatch([torch.zeros(3, 1, 2, 2), torch.ones(2, 1, 2, 2)], 2)
    assert [tuple(b.shape) for b in batches] == [(2, 1, 2, 2)] * 3 and batches[-1][1].sum() == 0  # padded from the start


@pytest.mark.parametrize(("name", "module", "extra"), [("litert", "litert_torch", "litert"), ("openvino-int8", "nncf", "openvino")])
def test_missing_package_names_the_extra(monkeypatch, name: str, module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    reason = runtimes.get_runtime(name).unavailable_reason()
    assert reason is not None and f"pip install -e '.[{extra}]'" in reason and module in reason
