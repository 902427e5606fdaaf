"""bench latency: statistics on a fake clock, every CPU runtime on a tiny model, the accuracy gate,
records, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from backbones.errors import UserError
from benchmark.cli import main
from benchmark.latency import runtimes as runtimes_module
from benchmark.latency.gate import (
    EagerReference,
    OutputComparison,
    fixed_batch,
    gate_class_mismatch,
    gate_verdict,
    run_gate,
)
from benchmark.latency.runner import LatencyOptions, benchmark
from benchmark.latency.runtimes import RUNTIMES, Prepared, parse_runtimes
from benchmark.latency.runtimes.base import fold_batchnorm
from benchmark.latency.runtimes.eager import EagerRuntime
from benchmark.latency.timing import Tier, measure, percentile, run_timed, summarize
from benchmark.runs.records import read_record, write_json_atomic
from tasks import get_task
from tasks.factory import build_model
from tasks.images import fit_canvas

TINY_MODEL = ["--task", "classification", "--backbone", "mnv2", "--width", "0.35", "--resolution", "64", "--num-classes", "8"]
TINY_TIER = ["--tier", "quick", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "3", "--min-seconds", "0"]
FAST = Tier("test", warmup_runs=1, warmup_s=0.0, min_runs=3, min_s=0.0)


# --------------------------------------------------------------------------------------------
# statistics and the timing loop, on a fake clock
# --------------------------------------------------------------------------------------------
class FakeClock:
    """A clock that only moves when the timed call says so: each call takes the next duration."""

    def __init__(self, durations: list[float]) -> None:
        self.now = 100.0
        self.durations = list(durations)
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def work(self) -> None:
        self.now += self.durations[min(self.calls, len(self.durations) - 1)]
        self.calls += 1


def test_statistics_are_exact_on_known_durations() -> None:
    durations = [d / 1000 for d in range(1, 101)]  # 1..100 ms, shuffled order must not matter
    stats = summarize(list(reversed(durations)), first_s=0.5, duration_s=5.05)
    assert stats.runs == 100 and stats.first_ms == pytest.approx(500.0)
    assert stats.min_ms == pytest.approx(1.0) and stats.max_ms == pytest.approx(100.0)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.std_ms == pytest.approx(statistics.pstdev(range(1, 101)))
    # numpy's linear percentiles: position (n - 1) q / 100
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        summarize([], first_s=0.0)


def test_timing_loop_needs_both_runs_and_seconds() -> None:
    # First run 50 ms (cold), then 10 ms each: warm-up needs 3 runs and 0.1 s, so 6 runs.
    clock = FakeClock([0.05] + [0.01] * 10_000)
    tier = Tier("t", warmup_runs=3, warmup_s=0.1, min_runs=20, min_s=1.0)
    timings = run_timed(clock.work, tier, clock=clock)
    assert timings.first_s == pytest.approx(0.05)
    assert timings.warmup_runs == 6
    # 20 runs are only 0.2 s: the loop keeps going until a full second has passed.
    assert len(timings.durations_s) == 100
    assert timings.duration_s == pytest.approx(1.0)
    assert all(d == pytest.approx(0.01) for d in timings.durations_s)

    # Slow calls: the seconds come quickly, the run count decides.
    clock = FakeClock([0.5] * 1000)
    timings = run_timed(clock.work, Tier("t", warmup_runs=2, warmup_s=0.0, min_runs=30, min_s=1.0), clock=clock)
    assert timings.warmup_runs == 2 and len(timings.durations_s) == 30

    # max_s caps a slow measurement below min_runs (TFLite's max_secs).
    clock = FakeClock([1.0] * 1000)
    timings = run_timed(clock.work, Tier("t", warmup_runs=1, warmup_s=0.0, min_runs=1024, min_s=60.0, max_s=5.0), clock=clock)
    assert len(timings.durations_s) == 5


def test_injected_timer_is_what_is_recorded() -> None:
    clock = FakeClock([0.001] * 100)
    timings = run_timed(clock.work, FAST, clock=clock, timer=lambda call: (call(), 0.25)[1])
    assert timings.first_s == 0.25 and set(timings.durations_s) == {0.25}


# --------------------------------------------------------------------------------------------
# the accuracy gate
# --------------------------------------------------------------------------------------------
def test_gate_verdict_thresholds() -> None:
    assert gate_verdict("classification", "top1", 70.5, 71.0, 99.5, 1000).verdict == "pass"
    assert gate_verdict("classification", "top1", 70.0, 71.0, 99.5, 1000).flagged is True  # 0.986 < 0.99
    assert gate_verdict("detection", "map", 21.0, 22.0, None, 90).flagged is True  # 0.955 < 0.97
    assert gate_verdict("segmentation", "miou", 72.0, 75.0, 99.0, 21).flagged is True  # 0.96 < 0.97
    # untrained model on synthetic data: too weak a reference to judge, even at full agreement
    assert gate_verdict("classification", "top1", 0.0, 0.0, 100.0, 8).verdict == "not judged"
    assert gate_verdict("detection", "map", 0.0, 0.0, None, 8).verdict == "not judged"


class MeanColourTask:
    """A task whose eager model is always right: the label is the brightest channel."""

    name = "classification"
    monitor = "top1"

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(40, 3, 8, 8, generator=generator)
        self.labels = self.images.mean((2, 3)).argmax(1)

    def decoder(self, model, cfg):  # classification: raw outputs are the predictions
        return lambda outputs, size: outputs

    def evaluate_callable(self, forward, cfg, max_images=None, *, decoder=None):
        correct = 0
        for images, labels in zip(self.images.split(16), self.labels.split(16), strict=True):
            correct += int((torch.as_tensor(forward(images)).argmax(1) == labels).sum())
        return {"top1": 100.0 * correct / len(self.labels), "images": len(self.labels)}


class MeanColour(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def test_gate_catches_a_broken_export_by_metric_ratio() -> None:
    task, reference = MeanColourTask(), EagerReference(MeanColour())
    faithful = run_gate(task, {}, reference, lambda x: MeanColour()(x) + 1e-6, 40)
    assert faithful.reference == 100.0 and faithful.ratio == 1.0 and faithful.flagged is False
    assert faithful.agreement == 100.0 and faithful.max_abs_diff == pytest.approx(1e-6, rel=0.1)
    # a "quantized" export that lost the blue channel's scale
    broken = run_gate(task, {}, reference, lambda x: MeanColour()(x) * torch.tensor([1.0, 1.0, 0.5]), 40)
    assert broken.ratio < 0.99 and broken.flagged is True and broken.basis == "top1 ratio and agreement"
    assert broken.verdict == "fail"
    assert broken.agreement < 100.0


def test_gate_catches_a_scrambled_class_order(synthetic_classification) -> None:
    task, cfg, model = synthetic_classification
    cfg = dict(cfg, batch_size=8, num_workers=0)
    reference = EagerReference(model)
    eager = run_gate(task, cfg, reference, None, 24)
    assert eager.basis == "reference" and eager.images == 24

    def shuffled(x: torch.Tensor) -> torch.Tensor:  # an export that scrambled the class order
        with torch.no_grad():
            return model(x).roll(1, dims=1)

    broken = run_gate(task, cfg, reference, fixed_batch(shuffled, 1), 24)
    assert broken.agreement == 0.0 and broken.flagged is True and broken.verdict == "fail"
    good = run_gate(task, cfg, reference, fixed_batch(lambda x: reference.forward(x), 5), 24)
    assert good.agreement == 100.0 and good.max_abs_diff == 0.0 and good.verdict == "pass"
    # the same copy against a reference near chance (8 classes: 2x chance = 25 %) is not judged
    reference.metrics = dict(reference.metrics, top1=20.0)
    weak = run_gate(task, cfg, reference, fixed_batch(lambda x: reference.forward(x), 5), 24)
    assert weak.verdict == "not judged" and weak.flagged is True and "2x chance" in weak.reason


def test_gate_needs_matching_classes_except_for_classification() -> None:
    assert gate_class_mismatch("classification", 1000, 8) is None  # labels index the wider head
    assert "--num-classes 5" in gate_class_mismatch("detection", 80, 5)
    assert gate_class_mismatch("segmentation", 21, 21) is None and gate_class_mismatch("segmentation", 21, None) is None


def test_agreement_is_tie_aware() -> None:
    comparison = OutputComparison(-1)
    tied = torch.zeros(1, 4, 3)  # an untrained head: every class scores the same
    comparison.update(tied, tied + torch.tensor([0.0, 1e-7, 0.0]))
    assert comparison.agreement() == 100.0
    comparison.update(torch.tensor([[[0.0, 1.0, 0.0]]]), torch.tensor([[[1.0, 0.0, 0.0]]]))
    assert comparison.agreement() == pytest.approx(80.0)


def test_images_of_any_size_fit_the_square_input() -> None:
    wide = torch.ones(3, 50, 200)
    canvas = fit_canvas(wide, 100)
    assert canvas.shape == (3, 100, 100) and canvas[:, :25].min() == 1 and canvas[:, 25:].abs().max() == 0
    small = fit_canvas(torch.ones(3, 10, 20), 32)
    assert small.shape == (3, 32, 32) and small.sum() == 3 * 10 * 20


def test_output_comparison_checks_shapes() -> None:
    comparison = OutputComparison(1)
    with pytest.raises(RuntimeError, match="shape"):
        comparison.update(torch.zeros(2, 3), torch.zeros(2, 4))


def test_fixed_batch_pads_and_trims() -> None:
    seen = []

    def forward(x: torch.Tensor) -> dict:
        seen.append(x.shape[0])
        return {"a": x.sum((1, 2, 3)), "b": (x[:, :1] * 2,)}

    out = fixed_batch(forward, 4)(torch.arange(10.0).view(10, 1, 1, 1).expand(10, 2, 1, 1))
    assert seen == [4, 4, 4]
    assert out["a"].tolist() == [2.0 * i for i in range(10)] and out["b"][0].shape == (10, 1, 1, 1)


# --------------------------------------------------------------------------------------------
# every CPU runtime on a tiny model
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_classification():
    from benchmark.runs.config import GENERAL_DEFAULTS

    task = get_task("classification")
    cfg = dict(GENERAL_DEFAULTS, task="classification", backbone="mnv2", width=0.35, resolution=64, num_classes=8)
    torch.manual_seed(0)
    return task, cfg, build_model(task, cfg).eval()


def test_cpu_runtimes_measure_and_pass_the_gate(synthetic_classification, tmp_path: Path) -> None:
    task, cfg, model = synthetic_classification
    names = ["eager", "eager-cl", "onnxruntime", "onnxruntime-int8"]
    options = LatencyOptions(runtimes=tuple(names), threads=1, tier=FAST, accuracy_images=16, calibration_images=8)
    records = benchmark(task, cfg, model, options)
    assert [r.runtime for r in records] == names
    by_name = {r.runtime: r for r in records}
    for record in records:
        stats = record.stats
        assert stats.runs >= 3 and 0 < stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
        assert record.init_ms >= 0 and record.threads == 1 and record.batch_size == 1
        assert record.input.startswith("image 0 of the synthetic validation split")
        assert record.peak_memory_mb is not None and record.peak_memory_mb >= 0
        gate = record.accuracy
        assert gate is not None and gate.metric == "top1" and gate.images == 16
        if record.runtime == "eager":
            assert gate.basis == "reference"
        else:
            assert gate.agreement is not None and gate.max_abs_diff is not None, record.runtime
    for name in ("eager-cl", "onnxruntime"):  # fp32 runtimes match eager
        assert by_name[name].accuracy.max_abs_diff < 1e-3, name
        assert by_name[name].accuracy.agreement == 100.0, name
    onnx = by_name["onnxruntime"].details
    assert onnx["batchnorm_nodes_left"] == 0 and onnx["providers"] == ["CPUExecutionProvider"]
    int8 = by_name["onnxruntime-int8"]
    assert int8.precision == "int8" and int8.details["quantize_nodes"] > 10
    assert int8.details["calibration"]["images"] == 8 and int8.details["calibration"]["overlaps_gate"]
    assert by_name["eager-cl"].layout.startswith("NHWC")
    # records round-trip through the file format the leaderboard reads
    path = write_json_atomic(tmp_path / "r.json", int8.to_json())
    loaded = read_record(path)
    assert loaded == json.loads(json.dumps(int8.to_json(), default=str))
    assert loaded["kind"] == "latency" and loaded["runtime"] == "onnxruntime-int8" and loaded["runs"] >= 3
    for key in ("p50_ms", "p90_ms", "p99_ms", "first_ms", "init_ms", "runtime_version", "layout", "environment"):
        assert key in loaded
    assert loaded["accuracy"]["metric"] == "top1"
    assert torch.get_num_threads() == 2  # restored (conftest runs tests with 2)


class TinyNet(nn.Sequential):
    """Few layers: inductor and ExecuTorch compile one kernel set per distinct layer, so a short net
    keeps their test in seconds (on mnv2 a cold inductor compile takes over a minute)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
        )


@pytest.mark.parametrize("name", ["compile", "executorch"])
def test_compiling_runtimes_match_eager(name: str) -> None:
    runtime = RUNTIMES[name]
    if runtime.unavailable_reason():
        pytest.skip(runtime.unavailable_reason())
    torch.manual_seed(0)
    model = TinyNet().eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so folding is exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
    example = torch.rand(2, 3, 32, 32)
    prepared = runtime.prepare(model, example, threads=1)
    assert prepared.static_batch == 2
    stats = measure(prepared.bind(example), FAST)
    assert stats.runs >= 3 and stats.p50_ms > 0
    batch = torch.rand(5, 3, 32, 32)  # the gate's batches: split to the static batch, padded
    with torch.no_grad():
        torch.testing.assert_close(fixed_batch(prepared, 2)(batch), model(batch), rtol=1e-4, atol=1e-5)
    assert runtime.version().split()[0] in ("torch", "executorch")


def test_broken_runtime_is_flagged_in_its_record(synthetic_classification, monkeypatch: pytest.MonkeyPatch) -> None:
    task, cfg, model = synthetic_classification

    class Broken(EagerRuntime):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.is_reference = "broken", False

        def prepare(self, model, example, **kwargs):
            inner = super().prepare(model, example, **kwargs)
            return Prepared(lambda x: inner(x).flip(1), inner.bind)

    monkeypatch.setitem(RUNTIMES, "broken", Broken())
    records = benchmark(task, cfg, model, LatencyOptions(runtimes=("eager", "broken"), tier=FAST, accuracy_images=8))
    assert records[0].accuracy.flagged is False and records[1].accuracy.flagged is True
    assert records[1].weights is None  # the caller names the weights (bench latency: weights_provenance)


def test_a_runtime_that_cannot_take_the_model_is_one_line_after_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converter's exception (torch.export refusing an in-place op, say) names the runtime and the op
    in one line, exit 2; the runtimes before and after it are still timed and recorded."""

    class Refusing(EagerRuntime):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.is_reference = "refusing", False

        def prepare(self, model, example, **kwargs):
            raise RuntimeError("Found a graph input that requires mutation\n  while tracing aten.add_.Tensor(x, y)")

    class Failing(EagerRuntime):  # takes the model, fails running it (LiteRT's int8 DIV on timm:efficientvit_b0)
        def __init__(self) -> None:
            super().__init__()
            self.name, self.is_reference = "failing", False

        def prepare(self, model, example, **kwargs):
            def invoke(x):
                raise RuntimeError("tflite/kernels/div.cc:262 data[i] != zero_point was not true.Node number 140 (DIV) "
                                   "failed to invoke.")  # fmt: skip

            return Prepared(invoke, lambda x: lambda: invoke(x))

    monkeypatch.setitem(RUNTIMES, "refusing", Refusing())
    monkeypatch.setitem(RUNTIMES, "failing", Failing())
    out = tmp_path / "records"
    err = one_line_error(capsys, ["latency", *TINY_MODEL, *TINY_TIER, "--runtime", "eager,refusing,failing,onnxruntime",
                                  "--accuracy-images", "0", "--threads", "1", "--json", "--output", str(out)])  # fmt: skip
    assert err == ("bench latency: error: --runtime refusing: cannot take classification mnv2 (RuntimeError: Found a "
                   "graph input that requires mutation; op aten.add_.Tensor); --runtime failing: cannot run "
                   "classification mnv2 (RuntimeError: tflite/kernels/div.cc:262 data[i] != zero_point was not true.Node "
                   "number 140 (DIV) failed to invoke.)")
    assert sorted(read_record(f)["runtime"] for f in out.glob("*.json")) == ["eager", "onnxruntime"]


def test_a_converter_failure_is_one_line_with_its_op() -> None:
    from benchmark.latency.runtimes.export import conversion_failure

    # Measured: LiteRT's XNNPACK delegate refusing timm:repvit_m0_9 in int8 repeats its message on one line.
    assert conversion_failure(RuntimeError("failed to create XNNPACK runtime" * 4)) == (
        "RuntimeError: failed to create XNNPACK runtime")
    assert conversion_failure(ValueError("Unsupported op\n node tfl.custom_op at loc(x)")) == (
        "ValueError: Unsupported op; op tfl.custom_op")


def test_batchnorm_folding_keeps_outputs(synthetic_classification) -> None:
    _, _, model = synthetic_classification
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------
def test_cli_writes_one_record_per_runtime_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "records"
    code = main(["latency", *TINY_MODEL, *TINY_TIER, "--runtime", "eager,onnxruntime", "--accuracy-images", "8",
                 "--threads", "1", "--json", "--output", str(out)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert [p["runtime"] for p in printed] == ["eager", "onnxruntime"]
    for item in printed:
        for key in ("runtime", "p50_ms", "p90_ms", "mean_ms", "std_ms", "min_ms", "runs"):
            assert key in item
    files = sorted(out.glob("classification-mnv2-*.json"))
    assert len(files) == 2
    records = {read_record(f)["runtime"]: read_record(f) for f in files}
    assert records["onnxruntime"]["p50_ms"] == next(p for p in printed if p["runtime"] == "onnxruntime")["p50_ms"]
    assert records["eager"]["resolution"] == 64 and records["eager"]["width"] == 0.35 and records["eager"]["tier"] == "custom"


def test_default_model_is_the_published_one_not_the_training_recipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded-data recipes train smaller models (classification at 96, detection 0.35 @128,
    segmentation 0.5 @112); latency and export time the papers' model unless told otherwise."""
    import benchmark.latency.runner

    seen = {}
    monkeypatch.setattr(benchmark.latency.runner, "benchmark", lambda task, cfg, model, options, **kw: seen.update(cfg) or [])
    for task, resolution in (("classification", 224), ("detection", 320), ("segmentation", 513)):
        seen.clear()
        assert main(["latency", "--task", task, "--backbone", "mnv2", "--runtime", "eager"]) == 0
        assert (seen["resolution"], seen["width"] or 1.0, seen.get("recipe")) == (resolution, 1.0, None), task
    assert main(["latency", "--backbone", "mnv2", "--width", "0.35", "--resolution", "96", "--runtime", "eager"]) == 0
    assert (seen["resolution"], seen["width"]) == (96, 0.35)


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench latency: error:") and "\n" not in err, err
    return err


def test_unknown_runtime_is_one_line(capsys) -> None:
    err = one_line_error(capsys, ["latency", *TINY_MODEL, "--runtime", "eager,tflite"])
    assert "unknown runtime 'tflite'" in err and "onnxruntime" in err


def test_missing_package_is_one_line(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    err = one_line_error(capsys, ["latency", *TINY_MODEL, "--runtime", "onnxruntime-int8"])
    assert "onnxruntime" in err and "pip install onnxruntime" in err


def test_executorch_without_the_package_is_one_line(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "executorch", None)
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)
    err = one_line_error(capsys, ["latency", *TINY_MODEL, "--runtime", "executorch"])
    assert "pip install executorch" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda-fp16", "onnxruntime-cuda"])
def test_cuda_without_gpu_is_one_line(capsys, name: str) -> None:
    err = one_line_error(capsys, ["latency", *TINY_MODEL, "--runtime", name])
    assert f"--runtime {name}:" in err and ("CUDA" in err or "cuda" in err)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--min-runs", "0"], "run counts and seconds"),
        (["--accuracy-images", "-1"], "--accuracy-images must be >= 0"),
    ],
)
def test_bad_numbers_are_one_line(capsys, flags: list[str], message: str) -> None:
    assert message in one_line_error(capsys, ["latency", *TINY_MODEL, "--runtime", "eager", *flags])


def test_checkpoint_of_another_task_is_one_line(capsys, tmp_path: Path) -> None:
    path = tmp_path / "det.ckpt"
    torch.save({"bench_config": {"task": "detection", "backbone": "mnv2"}, "state_dict": {}}, path)
    err = one_line_error(capsys, ["latency", "--task", "classification", "--checkpoint", str(path), "--runtime", "eager"])
    assert "'detection' checkpoint" in err
    err = one_line_error(capsys, ["latency", "--checkpoint", str(path), "--width", "0.5", "--runtime", "eager"])
    assert "--width" in err


def test_parse_runtimes() -> None:
    assert parse_runtimes(" eager, onnxruntime ,eager") == ("eager", "onnxruntime")
    with pytest.raises(UserError):
        parse_runtimes(" , ")
    assert runtimes_module.get_runtime("eager").is_reference
