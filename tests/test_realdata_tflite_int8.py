"""Integer execution of the official quantized files (tasks/tflite/int8.py) against LiteRT's builtin
integer kernels, every tensor compared, on real ImageNet / VOC / COCO images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

if not os.environ.get("BENCH_REALDATA"):
    pytest.skip("BENCH_REALDATA is not set (real ImageNet slice and official checkpoints)", allow_module_level=True)

from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image

from tasks.preprocessing import central_crop, pil_bilinear_resize
from tasks.tflite.fixed_point import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_ties_up,
    quantize_multiplier,
)
from tasks.tflite.int8 import QuantizedTFLite

REALDATA = Path(os.environ["BENCH_REALDATA"])


def test_requantization_matches_gemmlowp_examples() -> None:
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    m, s = quantize_multiplier(0.1)
    x = torch.tensor([5, 15, 25, -15, -25, 1000])
    # 0.1 * x rounded half away from zero: 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 (gemmlowp), negatives symmetric.
    assert multiply_by_quantized_multiplier(x, torch.tensor(m), torch.tensor(s)).tolist() == [1, 2, 3, -2, -3, 100]
    # LiteRT's CONV_2D: the negative ties go up instead.
    m, s = quantize_multiplier(0.5)
    x = torch.tensor([1, 3, -1, -3, -4])
    assert multiply_by_quantized_multiplier_ties_up(x, torch.tensor(m), torch.tensor(s)).tolist() == [1, 2, 0, -1, -2]


def imagenet_pixels(size: int, count: int) -> list[np.ndarray]:
    images = sorted((REALDATA / "imagenet" / "val").glob("*/*.JPEG"))[:count]
    return [pil_bilinear_resize(central_crop(np.asarray(Image.open(i).convert("RGB"))), size)[None] for i in images]


def voc_pixels(size: int, count: int) -> list[np.ndarray]:
    """VOC images padded bottom/right with 128 to the file's input, as the LiteRT reference does."""
    found = []
    for image in sorted((REALDATA / "voc" / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg"))[:count]:
        pixels = np.asarray(Image.open(image).convert("RGB"))[:size, :size]
        canvas = np.full((1, size, size, 3), 128, np.uint8)
        canvas[0, : pixels.shape[0], : pixels.shape[1]] = pixels
        found.append(canvas)
    return found


def coco_pixels(size: int, count: int) -> list[np.ndarray]:
    images = sorted((REALDATA / "coco" / "val2017").glob("*.jpg"))[:count]
    return [np.asarray(Image.open(i).convert("RGB").resize((size, size), Image.BILINEAR))[None] for i in images]


# (file, images, how many): each file's every computed tensor equals LiteRT's. A few images each, to
# stay near 30 s (the full slices are measured through bench eval: README, "Integer execution").
CASES = {
    "mobilenet_v1_0.25_128_quant": (imagenet_pixels, 4),
    "mobilenet_v2_1.0_224_quant": (imagenet_pixels, 1),
    "tf2_mobilenet_v2_1.0_224_ptq": (imagenet_pixels, 1),  # int8 per channel, QUANTIZE, MEAN
    "deeplabv3_mnv2_dm05_pascal_quant": (voc_pixels, 1),
    "ssd_mobilenet_v1_coco_quant": (coco_pixels, 1),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_integer_execution_is_litert_bit_for_bit(name: str) -> None:
    path = REALDATA / "weights" / f"{name}.tflite"
    model = QuantizedTFLite(path)
    reference = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    reference.allocate_tensors()
    detail = reference.get_input_details()[0]
    images, count = CASES[name]
    for pixels in images(int(detail["shape"][1]), count):
        reference.set_tensor(detail["index"], pixels)
        reference.invoke()
        raw, env = model.run(pixels, keep=True)
        computed = [op.outputs[0] for op in model.graph.ops if op.outputs[0] in env and op.outputs[0] != model.input]
        assert len(computed) >= len(model.graph.convs())
        for tensor in computed:
            assert torch.equal(env[tensor].long(), torch.from_numpy(reference.get_tensor(tensor).astype(np.int64))), tensor
        raw_ids, _ = model.raw_outputs()
        for index, values in zip(raw_ids, raw, strict=True):
            info = model.graph.tensors[index]
            expected = (reference.get_tensor(index).astype(np.float64) - info.zero_point) * info.scale
            assert np.allclose(values.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize(("runtime", "metrics", "check"), [("tflite-int8", {"top1": 58.3333, "top5": 87.5}, 2),
                                                           ("xnnpack-int8", {"top1": 60.4167, "top5": 87.5}, 1),
                                                           ("xnnpack-int8", {"top1": 60.4167, "top5": 87.5}, 0)])
def test_bench_eval_runs_the_file_in_integers_and_records_it(tmp_path, capsys, runtime, metrics, check) -> None:
    """``bench eval --runtime tflite-int8 / xnnpack-int8`` on the first 48 slice images (symlinked):
    top-1/top-5 from the integer path; with ``--check-litert N`` the first N batches (of 32 images,
    then 16) equal LiteRT's builtin kernels / its default XNNPACK interpreter on every raw value, and
    the record says how many were checked; without it, no check and none recorded."""
    from benchmark.cli import main

    subset = tmp_path / "imagenet"
    for image in sorted((REALDATA / "imagenet" / "val").glob("*/*.JPEG"))[:48]:
        link = subset / "val" / image.parent.name / image.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image)
    weights = REALDATA / "weights" / "mobilenet_v1_0.25_128_quant.tflite"
    code = main(["eval", "--task", "classification", "--weights", str(weights), "--data", str(subset),
                 "--runtime", runtime, "--output", str(tmp_path / "out"), "--check-litert", str(check)])
    assert code == 0
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert (record["runtime"], record["precision"], record["images"]) == (runtime, "uint8", 48)
    checked = {1: 32, 2: 48}.get(check)
    expected = {"batches": check, "images": checked, "raw_values_equal": 100.0, "argmax_equal": 100.0} if check else None
    assert record["litert_agreement"] == expected
    assert record["metrics"] == metrics  # measured; deterministic
    out = capsys.readouterr().out
    assert f"runtime {runtime} (uint8)" in out
    assert (f"first {check} batches, {checked} images): raw outputs 100.00 % equal" in out) == bool(check)


def test_check_litert_needs_an_integer_runtime(tmp_path, capsys) -> None:
    from benchmark.cli import main

    code = main(["eval", "--task", "classification", "--weights", str(tmp_path / "x.tflite"), "--data", str(tmp_path),
                 "--check-litert", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["bench eval: error: --check-litert 2: a number of batches (0 or more) with "
                                 "--runtime tflite-int8 or xnnpack-int8"]


def test_int8_runtime_without_a_file_is_one_line(tmp_path, capsys) -> None:
    from benchmark.cli import main

    code = main(["eval", "--task", "classification", "--checkpoint", str(tmp_path / "x.ckpt"), "--data", str(tmp_path),
                 "--runtime", "tflite-int8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["bench eval: error: --runtime tflite-int8 runs a quantized file: "
                                 "give it with --weights FILE.tflite"]


XNNPACK_CASES = ["mobilenet_v1_0.25_128_quant", "mobilenet_v2_1.0_224_quant", "deeplabv3_mnv2_dm05_pascal_quant",
                 "ssd_mobilenet_v1_coco_quant"]


@pytest.mark.parametrize("name", XNNPACK_CASES)
def test_xnnpack_arithmetic_is_litert_default_bit_for_bit(name: str) -> None:
    """LiteRT's default interpreter (XNNPACK delegate) on the file repacked with every op's output as a
    graph output: each tensor, the uint8 SOFTMAX included, equals the xnnpack arithmetic's."""
    from tasks.tflite.integer_model import _with_outputs

    path = REALDATA / "weights" / f"{name}.tflite"
    model = QuantizedTFLite(path, arithmetic="xnnpack")
    every = [op.outputs[0] for op in model.graph.ops]
    reference = Interpreter(model_content=_with_outputs(path.read_bytes(), every), num_threads=2)
    reference.allocate_tensors()
    detail = reference.get_input_details()[0]
    images, count = CASES[name]
    for pixels in images(int(detail["shape"][1]), count):
        reference.set_tensor(detail["index"], pixels)
        reference.invoke()
        raw, env = model.run(pixels, keep=True)
        every = [tensor for tensor in every if tensor in env]  # up to the raw outputs
        assert len(every) >= len(model.graph.convs())
        for tensor in every:
            assert torch.equal(env[tensor].long(), torch.from_numpy(reference.get_tensor(tensor).astype(np.int64))), tensor


def test_an_op_the_arithmetic_lacks_is_one_line_before_any_data(tmp_path, capsys) -> None:
    """The TF2 file's uint8 -> int8 QUANTIZE is not matched against XNNPACK yet: refused up front."""
    from benchmark.cli import main

    weights = REALDATA / "weights" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    code = main(["eval", "--task", "classification", "--weights", str(weights), "--data", str(tmp_path),
                 "--runtime", "xnnpack-int8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == f"bench eval: error: {weights}: XNNPACK's QUANTIZE is matched for uint8 -> uint8 only"
