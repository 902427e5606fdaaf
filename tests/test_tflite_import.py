"""TF "SAME" padding, the TFLite reader and the importer's checks, without the real checkpoints.

The TFLite files here are written with LiteRT's own flatbuffer schema (``tflite_builder``), so the
reader is checked against known weights, quantization and options.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tflite_builder import Conv, write_tflite
from torch import nn

from backbones import create_backbone
from backbones.errors import UserError
from backbones.layers import Conv2dTFSame, ConvNormAct, tf_same_padding
from tasks.tflite.reader import dequantize, read_tflite


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "expected"),
    [
        (224, 3, 2, 1, (0, 1)),  # even size, stride 2: right/bottom only
        (513, 3, 2, 1, (1, 1)),  # odd size: symmetric
        (7, 3, 1, 1, (1, 1)),
        (33, 3, 1, 2, (2, 2)),
        (10, 1, 2, 1, (0, 0)),
        (6, 4, 2, 1, (1, 1)),
        (5, 4, 2, 1, (1, 2)),
    ],
)
def test_tf_same_padding_matches_tf_rule(size, kernel, stride, dilation, expected) -> None:
    assert tf_same_padding(size, kernel, stride, dilation) == expected


@pytest.mark.parametrize("size", [(224, 224), (225, 160), (7, 8), (65, 65)])
def test_tf_conv_equals_explicit_pad_then_valid_conv(size) -> None:
    torch.manual_seed(0)
    conv = Conv2dTFSame(4, 6, 3, stride=2, bias=True)
    x = torch.randn(2, 4, *size)
    top, bottom = tf_same_padding(size[0], 3, 2, 1)
    left, right = tf_same_padding(size[1], 3, 2, 1)
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias, stride=2)
    out = conv(x)
    assert out.shape[-2:] == (-(-size[0] // 2), -(-size[1] // 2))
    torch.testing.assert_close(out, expected)
    if size[0] % 2 == 0:  # asymmetric there: differs from PyTorch's symmetric padding
        symmetric = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
        assert not torch.allclose(out, symmetric)


@pytest.mark.parametrize(("size", "pads"), [(65, 0), (64, 1)])
def test_symmetric_tf_padding_exports_as_one_conv(tmp_path: Path, size: int, pads: int) -> None:
    """At odd sizes (DeepLab's 513) TF pads symmetrically and the conv pads itself: no Pad node,
    which kept ONNX Runtime from fusing and cost DeepLab a fifth of its time."""
    import onnx

    from benchmark.latency.runtimes.onnxruntime import export_onnx

    export_onnx(Conv2dTFSame(4, 6, 3, stride=2).eval(), torch.randn(1, 4, size, size), tmp_path / "conv.onnx")
    ops = [node.op_type for node in onnx.load(str(tmp_path / "conv.onnx")).graph.node]
    assert ops.count("Conv") == 1 and ops.count("Pad") == pads


def test_tf_padding_keeps_state_dict_keys_and_only_strided_convs_change() -> None:
    torch_model, tf_model = create_backbone("mnv2", width=0.5), create_backbone("mnv2", width=0.5, padding="tf")
    assert list(torch_model.state_dict()) == list(tf_model.state_dict())
    tf_model.load_state_dict(torch_model.state_dict())
    strided = [m for m in tf_model.modules() if isinstance(m, nn.Conv2d) and m.stride != (1, 1)]
    assert strided and all(isinstance(m, Conv2dTFSame) for m in strided)
    assert not any(isinstance(m, Conv2dTFSame) and m.stride == (1, 1) for m in tf_model.modules())
    torch_model.eval(), tf_model.eval()
    x = torch.randn(1, 3, 65, 65)  # odd sizes all the way: TF pads symmetrically, outputs agree
    torch.testing.assert_close(tf_model(x)["stride32"], torch_model(x)["stride32"])
    assert not torch.allclose(tf_model(x[..., :64, :64])["stride32"], torch_model(x[..., :64, :64])["stride32"])


def test_padding_option_is_checked() -> None:
    with pytest.raises(ValueError, match="padding"):
        ConvNormAct(3, 8, 3, padding="same")
    with pytest.raises(ValueError, match="padding"):
        create_backbone("mnv1", padding="valid")


def test_dequantize_per_channel() -> None:
    q = torch.tensor([[[[1, 2]], [[3, 4]]]], dtype=torch.int8).numpy().reshape(2, 1, 1, 2)
    params = {"scales": [0.5, 2.0], "zero_points": [0, 1], "quantized_dimension": 0}
    out = dequantize(q, params)
    assert out.tolist() == [[[[0.5, 1.0]]], [[[4.0, 6.0]]]]
    per_tensor = dequantize(q.astype("uint8"), {"scales": [0.25], "zero_points": [2]})
    assert per_tensor.reshape(-1).tolist() == [-0.25, 0.0, 0.25, 0.5]


def test_reader_returns_pytorch_layout_dequantized_weights(tmp_path) -> None:
    torch.manual_seed(0)
    dense = torch.randn(8, 3, 3, 3)
    depthwise = torch.randn(8, 1, 3, 3)
    path = write_tflite(
        tmp_path / "tiny.tflite",
        (1, 16, 16, 3),
        [Conv(dense, torch.randn(8), stride=2, activation="RELU6"), Conv(depthwise, torch.randn(8), depthwise=True)],
    )
    graph = read_tflite(path)
    assert [op.kind for op in graph.ops] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    first, second = graph.ops
    assert first.weight.shape == (8, 3, 3, 3) and second.weight.shape == (8, 1, 3, 3)
    # int8 per-channel quantization: within half a step of the float weights
    step = dense.abs().amax(dim=(1, 2, 3)) / 127
    assert ((first.weight - dense).abs().amax(dim=(1, 2, 3)) <= step / 2 + 1e-6).all()
    assert first.stride == (2, 2) and first.padding == "SAME" and first.activation == "RELU6"
    assert second.stride == (1, 1) and second.activation == "NONE"
    assert graph.input.shape == (1, 16, 16, 3)


def test_reader_rejects_truncated_and_foreign_files(tmp_path) -> None:
    good = write_tflite(tmp_path / "tiny.tflite", (1, 8, 8, 3), [Conv(torch.randn(4, 3, 3, 3), torch.zeros(4))])
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(UserError, match="truncated.tflite"):
        read_tflite(truncated)
    foreign = tmp_path / "model.tflite"
    foreign.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(UserError, match="model.tflite: not a TFLite model"):
        read_tflite(foreign)
    with pytest.raises(UserError, match="does not exist"):
        read_tflite(tmp_path / "missing.tflite")


# -- importer checks (a MobileNetV1 body written as a real int8 TFLite file) -----------------------


def mnv1_body_file(tmp_path, width: float = 0.25):
    """A TFLite file holding the convs of an mnv1 body (TF padding, ReLU6), and that source model."""
    from backbones.mobilenet_v1 import mobilenet_v1

    torch.manual_seed(0)
    source = mobilenet_v1(width=width, padding="tf", activation_layer=nn.ReLU6)
    layers = [
        Conv(m.weight.detach(), torch.randn(m.out_channels) * 0.1, stride=m.stride[0],
             depthwise=m.groups > 1, activation="RELU6")  # fmt: skip
        for m in source.modules()
        if isinstance(m, nn.Conv2d)
    ]
    return write_tflite(tmp_path / "mnv1_body.tflite", (1, 32, 32, 3), layers), layers


def test_importer_fills_convs_and_identity_batchnorms(tmp_path) -> None:
    from backbones.mobilenet_v1 import mobilenet_v1
    from tasks.tflite.facts import inspect_tflite
    from tasks.tflite.importer import load_tflite_weights

    path, layers = mnv1_body_file(tmp_path)
    facts = inspect_tflite(path)
    assert (facts.backbone, facts.width, facts.activation, facts.resolution) == ("mnv1", 0.25, "RELU6", 32)
    target = mobilenet_v1(width=0.25, padding="tf", activation_layer=nn.ReLU6)
    report = load_tflite_weights(target, path, facts=facts)
    assert report.layers == len(layers) == 27
    stem_conv, stem_norm = target.stem[0], target.stem[1]
    step = layers[0].weight.abs().amax() / 127
    assert (stem_conv.weight - layers[0].weight).abs().max() <= step
    assert torch.allclose(stem_norm.bias, layers[0].bias, atol=1e-3)
    target.eval()
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(stem_norm(x), x + stem_norm.bias.view(1, -1, 1, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 0.5}, r"op 0 CONV_2D \[8, 3, 3, 3\] does not fit stem\.0: weight shape expected \[16, 3, 3, 3\], found \[8, 3, 3, 3\]"),
        ({"activation_layer": nn.ReLU}, r"op 0 CONV_2D .* does not fit stem\.0: activation expected ReLU6, found ReLU"),
        ({"padding": "torch"}, r"op 0 CONV_2D .* does not fit stem\.0: padding expected TF SAME"),
    ],
)
def test_importer_names_the_first_layer_that_does_not_fit(tmp_path, options, message) -> None:
    from backbones.mobilenet_v1 import mobilenet_v1
    from tasks.tflite.importer import load_tflite_weights

    path, _ = mnv1_body_file(tmp_path)
    settings = {"width": 0.25, "padding": "tf", "activation_layer": nn.ReLU6, **options}
    with pytest.raises(UserError, match=message) as error:
        load_tflite_weights(mobilenet_v1(**settings), path)
    assert "\n" not in str(error.value) and "mnv1_body.tflite" in str(error.value)


def test_eval_cli_reports_a_bad_weights_file_in_one_line(tmp_path, capsys) -> None:
    from benchmark.cli import main

    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x00" * 64)
    code = main(["eval", "--task", "classification", "--weights", str(bad), "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"bench eval: error: {bad}: not a TFLite model (no TFL3 identifier)"]


def test_a_file_of_unknown_kind_is_one_line_naming_its_ops_and_shapes(tmp_path, capsys) -> None:
    """A conv chain ending in a feature map is no classifier, segmenter or detector the importer knows."""
    from benchmark.cli import main

    torch.manual_seed(0)
    path = write_tflite(tmp_path / "features.tflite", (1, 8, 8, 3),
                        [Conv(torch.randn(4, 3, 3, 3) * 0.1, torch.zeros(4), activation="RELU6")])
    code = main(["eval", "--task", "classification", "--weights", str(path), "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "features.tflite: not a MobileNet checkpoint the importer knows (ops CONV_2D;" in err[0]
    assert "input [1, 8, 8, 3] int8; output [1, 8, 8, 4] int8); supported: MobileNetV1/V2 classifiers" in err[0]
