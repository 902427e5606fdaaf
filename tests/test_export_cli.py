"""``bench export``: a file and its sidecar; bad input is one line with exit code 2. And the ONNX
Runtime I/O binding path of ``onnxruntime-cuda``, exercised on the CPU execution provider."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main

TINY = ["--task", "classification", "--backbone", "mnv2", "--width", "0.35", "--resolution", "64", "--num-classes", "8"]


def test_export_onnx_writes_the_file_and_its_sidecar(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    assert main(["export", *TINY, "--format", "onnx", "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert out.stat().st_size > 10_000 and sidecar["format"] == "onnx" and sidecar["precision"] == "fp32"
    assert sidecar["input"]["shape"] == [1, 3, 64, 64] and sidecar["num_classes"] == 8
    assert sidecar["weights"]["source"] == "random init" and len(sidecar["labels"]) == 8
    assert sidecar["input"]["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--format", "onnx", "--out", "m.tflite"], "--out: m.tflite does not end in .onnx"),
        (["--format", "coreml", "--out", "m.mlpackage"], "--format: unknown format 'coreml'"),
        (["--format", "onnx", "--out", "m.onnx", "--checkpoint", "missing.ckpt"], "--checkpoint: missing.ckpt does not exist"),
    ],
)
def test_export_bad_input_is_one_line(flags, message, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", *TINY[:2], *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_io_binding_call_matches_a_plain_run(tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    from benchmark.latency.runtimes.onnxruntime import bound_call, export_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    example = torch.rand(1, 3, 8, 8)
    export_onnx(model.eval(), example, tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    array = example.numpy()
    call, read = bound_call(session, array, "cpu")
    call()
    (bound,) = read()
    (plain,) = session.run(None, {"input": array})
    np.testing.assert_allclose(bound, plain, rtol=1e-6)
