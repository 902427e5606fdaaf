"""The float graph, mixed execution and layer-wise errors behind ``bench eval --compare-float``, on a
small int8 conv chain written with LiteRT's schema (no real checkpoints needed); the report itself on
the official files is in tests/test_realdata_compare_float.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import bench
from tflite_builder import ACT_SCALE, Conv, write_tflite

from tasks.tflite.int8 import QuantizedTFLite
from tasks.tflite.layer_error import LayerError, sqnr_db
from tasks.tflite.mixed import MixedTFLite


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> MixedTFLite:
    torch.manual_seed(0)
    layers = [
        Conv(torch.randn(8, 3, 3, 3) * 0.3, torch.randn(8) * 0.1, stride=2, activation="RELU6"),
        Conv(torch.randn(8, 1, 3, 3) * 0.3, torch.randn(8) * 0.1, depthwise=True, activation="RELU6"),
        Conv(torch.randn(4, 8, 1, 1) * 0.3, torch.randn(4) * 0.1),
    ]
    path = write_tflite(tmp_path_factory.mktemp("chain") / "chain.tflite", (1, 15, 15, 3), layers)
    return MixedTFLite(QuantizedTFLite(path))


def pixels(count: int = 4) -> np.ndarray:
    return np.random.default_rng(1).integers(-128, 128, (count, 15, 15, 3)).astype(np.int8)


def test_float_graph_is_the_dequantized_chain_in_float(chain: MixedTFLite) -> None:
    """Each op on dequantized weights with TF's SAME padding and the fused clamp, nothing rounded."""
    x = torch.from_numpy(pixels().astype(np.float32)).permute(0, 3, 1, 2) * ACT_SCALE
    for op, pad in zip(chain.ops, [(1, 1, 1, 1), (1, 1, 1, 1), (0, 0, 0, 0)], strict=True):
        groups = x.shape[1] if op.kind == "DEPTHWISE_CONV_2D" else 1
        x = F.conv2d(F.pad(x, pad), op.weight, op.bias, stride=op.stride, groups=groups)
        x = x.clamp(0, 6) if op.activation == "RELU6" else x
    (out,), _ = chain.floats.run(pixels(), chain.outputs)
    assert torch.allclose(out, x.permute(0, 2, 3, 1), atol=1e-5)


def test_no_op_in_float_is_the_integer_path_and_every_op_the_float_graph(chain: MixedTFLite) -> None:
    integer, _ = chain.engine.run(pixels())
    assert torch.equal(chain.as_floats(chain.run(pixels()))[0], integer[0])
    (floats,), _ = chain.floats.run(pixels(), chain.outputs)
    every = {op.index for op in chain.ops}
    assert torch.equal(chain.run(pixels(), every)[0], floats)
    # One op in float: its output is quantized again for the integer op that reads it.
    middle = chain.run(pixels(), {chain.ops[1].index})
    assert not middle[0].is_floating_point()


def test_a_branch_off_the_integer_trunk_equals_the_whole_run(chain: MixedTFLite) -> None:
    """``trunk`` + ``finish`` from any op (what the comparison does) = running the variant from the start."""
    keep = {chain.ops[1].index, chain.ops[2].index}
    whole = chain.run(pixels(), keep)
    for position, state in chain.trunk(pixels()):
        if position == 1:
            assert torch.equal(chain.finish(state.branch(), position, keep)[0], whole[0])


def test_isolated_error_of_the_integer_chain_is_its_rounding_and_its_clipping(chain: MixedTFLite) -> None:
    """The integer kernels round the float result to the nearest step: |error| <= 1/2 step, plus the
    requantization's double rounding (the high multiply's half unit, 2**-shift of a step), once the
    float result is clipped to the output's 8-bit range; the last (linear) conv's outputs pass that
    range, and its error says so."""
    state = chain.start(pixels(8))
    worst = []
    for position, op in enumerate(chain.ops):
        isolated = chain.floats.run_op(op, {i: chain.as_float(i, state) for i in chain.activations(op)})
        integer = chain.dequantize(op.outputs[0], chain.step(position, state, False))
        clipped = isolated.clamp(-128 * ACT_SCALE, 127 * ACT_SCALE)
        error = LayerError()
        error.add(integer, clipped, isolated, ACT_SCALE)
        rounding = error.summary(ACT_SCALE)
        assert rounding["max_abs_error_steps"] <= 0.51, op.describe()
        assert 0.1 < rounding["rmse_steps"] < 0.35 and abs(rounding["mean_error_steps"]) < 0.05, op.describe()
        unclipped = LayerError()
        unclipped.add(integer, isolated, isolated, ACT_SCALE)
        worst.append(unclipped.summary(ACT_SCALE)["max_abs_error_steps"])
    assert worst[0] <= 0.51 and worst[1] <= 0.51 and worst[2] > 2  # ReLU6 keeps the first two inside


def test_layer_error_summary_in_steps_and_db() -> None:
    error = LayerError()
    f = torch.tensor([1.0, 2.0, 3.0, 4.0])
    q = f + torch.tensor([0.05, -0.05, 0.05, 0.5]) * 0.1  # steps of 0.1
    error.add(q, f, f, 0.1)
    summary = error.summary(0.1)
    assert summary["mean_error_steps"] == pytest.approx(0.1375, rel=1e-5)
    assert summary["rmse_steps"] == pytest.approx(math.sqrt((3 * 0.0025 + 0.25) / 4), rel=1e-5)
    assert summary["max_abs_error_steps"] == pytest.approx(0.5, rel=1e-5)
    assert summary["isolated_sqnr_db"] == pytest.approx(10 * math.log10(30 / float(((q - f) ** 2).sum())), rel=1e-6)
    assert sqnr_db(1.0, 0.0) == math.inf


@pytest.mark.parametrize(("flags", "message"), [
    (["--compare-float"], "--compare-float compares a quantized file's integer path with its float graph: "
                          "give --weights FILE.tflite with --runtime tflite-int8 or xnnpack-int8"),
    (["--runtime", "tflite-int8", "--compare-layers", "3"], "--compare-images and --compare-layers go with --compare-float"),
    (["--compare-float", "--compare-images", "0"], "argument --compare-images: must be at least 1, got 0"),
    (["--compare-float", "--compare-layers", "-1"], "argument --compare-layers: a count (0 or more) or 'all', got -1"),
])
def test_compare_float_flags_are_checked_in_one_line(tmp_path, capsys, flags, message) -> None:
    """Before any file or data is read (the weights here do not exist); argparse's own errors exit."""
    code, _, err = bench(["eval", "--task", "classification", "--weights", str(tmp_path / "x.tflite"), "--data",
                          str(tmp_path), *flags], capsys)  # fmt: skip
    assert code == 2 and err.strip().splitlines() == [f"bench eval: error: {message}"]
