"""bf16 runtimes refuse on CPUs without native bf16; deploy_compare's ratios never mix precisions."""

from __future__ import annotations

import pytest

from backbones.errors import UserError
from benchmark.latency import runtimes
from benchmark.latency.deploy_compare import group_by_precision
from benchmark.latency.runtimes import cpu_bf16
from benchmark.latency.runtimes.openvino import precision_name

AVX2_ONLY = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n"
WITH_AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n"
WITH_AVX512_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


def test_native_bf16_read_from_cpu_flags() -> None:
    assert cpu_bf16.bf16_unavailable_reason(WITH_AMX) is None
    assert cpu_bf16.bf16_unavailable_reason(WITH_AVX512_BF16) is None
    reason = cpu_bf16.bf16_unavailable_reason(AVX2_ONLY)
    assert reason is not None and "avx512_bf16 / amx_bf16" in reason and "\n" not in reason
    assert "unknown" in cpu_bf16.bf16_unavailable_reason("processor\t: 0\n")


@pytest.mark.parametrize(("name", "module"), [("eager-bf16", "eager"), ("openvino-bf16", "openvino")])
def test_bf16_runtime_refuses_without_native_bf16(monkeypatch, name: str, module: str) -> None:
    monkeypatch.setattr(f"benchmark.latency.runtimes.{module}.bf16_unavailable_reason", lambda: "no native bf16 here")
    runtime = runtimes.get_runtime(name)
    assert runtime.precision == "bf16"
    if runtime.unavailable_reason() != "no native bf16 here":
        pytest.skip(f"{name}: {runtime.unavailable_reason()}")
    with pytest.raises(UserError, match=rf"^--runtime {name}: no native bf16 here$"):
        runtime.check_available()


def test_bf16_refusal_is_one_line_exit_2_from_the_cli(capsys) -> None:
    if cpu_bf16.bf16_unavailable_reason() is None:
        pytest.skip("this CPU has native bf16: the runtime would run")
    from benchmark.cli import main

    code = main(["latency", "--backbone", "mnv2", "--width", "0.35", "--resolution", "96", "--runtime", "eager-bf16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "eager-bf16" in err[0] and "native bf16" in err[0]


def test_openvino_precision_hint_labels() -> None:
    openvino = pytest.importorskip("openvino")
    assert [precision_name(h) for h in ("f32", "bf16", "f16", "BF16")] == ["fp32", "bf16", "fp16", "bf16"]
    assert [precision_name(t) for t in (openvino.Type.f32, openvino.Type.bf16, openvino.Type.f16)] == [
        "fp32", "bf16", "fp16"]
    with pytest.raises(ValueError, match="unknown precision"):
        precision_name(openvino.Type.i8)


def _tiny_openvino_model():
    import openvino
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).eval()
    return openvino.convert_model(model, example_input=torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("hint", ["f32", "bf16"])
def test_openvino_reports_what_it_compiled_through_its_api(hint: str) -> None:
    """The real installed OpenVINO compiles a model with each hint; the label is what it compiled to:
    fp32 for f32, and for bf16 either bf16 (CPUs with bf16 units) or fp32 (OpenVINO falls back), on
    every CPU, so the label code runs on every CI machine whatever its instruction set."""
    openvino = pytest.importorskip("openvino")
    from benchmark.latency.runtimes.openvino import compiled_precision

    core = openvino.Core()
    compiled = core.compile_model(_tiny_openvino_model(), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    label = compiled_precision(compiled)
    has_bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert label == ("bf16" if hint == "bf16" and has_bf16 else "fp32")


def test_like_with_like_grouping() -> None:
    p50 = {"eager": 9.0, "openvino": 3.9, "openvino-int8": 2.0, "plain openvino": 2.3, "plain litert": 3.6,
           "plain onnxruntime": 4.1, "openvino-bf16": 2.2}
    precisions = {"eager": "fp32", "openvino": "fp32", "openvino-int8": "int8", "plain openvino": "bf16",
                  "plain litert": "fp32", "plain onnxruntime": "fp32", "openvino-bf16": "bf16"}
    groups = group_by_precision(p50, precisions, {"plain openvino", "plain litert", "plain onnxruntime"})
    # The headline compares fp32 with fp32: plain openvino's bf16 2.3 ms is not the fp32 baseline.
    assert groups.fastest("plain", "fp32") == ("plain litert", 3.6)
    assert groups.fastest("suite", "fp32") == ("openvino", 3.9)
    assert groups.fastest("plain", "bf16") == ("plain openvino", 2.3)
    assert groups.fastest("suite", "bf16") == ("openvino-bf16", 2.2)
    assert groups.suite["int8"] == {"openvino-int8": 2.0}
    assert groups.fastest("plain", "int8") is None
