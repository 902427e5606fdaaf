"""The device tools' parsers on verbatim recorded outputs (tests/fixtures/device_logs/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backbones.errors import UserError
from benchmark.devices.parsers import (
    ToolOutputError,
    parse_benchmark_app,
    parse_benchmark_model,
    parse_device_timer,
    parse_litert_benchmark,
    parse_onnxruntime_perf_test,
)

LOGS = Path(__file__).parent / "fixtures" / "device_logs"


def log(name: str) -> str:
    return (LOGS / name).read_text()


def test_old_build_scientific_notation_last_count_line_is_measured():
    r = parse_benchmark_model(log("benchmark_model_old_scientific.txt"))
    # avg=2.95034e+06 parses whole (the tast-tests regex would give 2.95034).
    assert (r.count, r.avg_us, r.min_us, r.max_us, r.std_us) == (50, 2.95034e6, 2727568, 3189954, 109798)
    assert r.p50_us is None  # this build prints no percentiles
    assert (r.init_us, r.first_us, r.warmup_avg_us) == (17187, 3512391, 3.51239e6)
    assert r.memory == {"delta_init_mb": 4.21094, "delta_overall_mb": 46.0859}
    assert r.peak_memory_mb == 46.0859


def test_info_prefix_and_percentiles():
    r = parse_benchmark_model(log("benchmark_model_info_percentiles.txt"))
    assert (r.count, r.avg_us, r.p50_us, r.min_us, r.max_us) == (50, 1.24027e6, 1239807, 1238588, 1252566)
    assert r.details["p5"] == 1238753 and r.details["p95"] == 1247415
    assert r.memory == {"delta_init_mb": 6.36328, "delta_overall_mb": 109.832}


def test_android_older_memory_line_single_phase():
    r = parse_benchmark_model(log("benchmark_model_android_peak_memory.txt"))
    assert (r.count, r.avg_us, r.first_us, r.init_us) == (50, 249684, 360262, 16242)
    assert r.memory == {"max_rss_init_mb": 4.92969, "max_rss_overall_mb": 138.809}
    assert r.peak_memory_mb == 138.809


def test_logcat_prefix_and_crlf_parse_like_the_plain_log():
    plain = parse_benchmark_model(log("benchmark_model_android_peak_memory.txt"))
    text = (LOGS / "benchmark_model_logcat_crlf.txt").read_bytes().decode()
    assert "\r\n" in text and text.startswith("I tflite  : ")
    assert parse_benchmark_model(text) == plain


def test_xnnpack_delegation_and_peak_monitor():
    r = parse_benchmark_model(log("benchmark_model_xnnpack_peak_monitor.txt"))
    assert (r.count, r.avg_us, r.min_us) == (1061, 56265.8, 54669)  # not the warm-up's count=9
    assert (r.delegate, r.delegated_nodes, r.total_nodes) == ("TfLiteXNNPackDelegate", 58, 58)
    assert r.peak_memory_mb == 93.2383


def test_all_same_samples_give_curr_as_every_statistic():
    r = parse_benchmark_model("count=1 curr=1000\ncount=20 curr=1500 (all same)\nInference timings in us: Init: 10, "
                              "First inference: 1000, Warmup (avg): 1000, Inference (avg): 1500\n")
    assert (r.count, r.avg_us, r.min_us, r.max_us) == (20, 1500, 1500, 1500)


@pytest.mark.parametrize("name", ["benchmark_model_failure.txt", "benchmark_model_truncated.txt"])
def test_failure_and_truncated_logs_raise(name):
    with pytest.raises(ToolOutputError) as info:
        parse_benchmark_model(log(name))
    assert isinstance(info.value, UserError)
    assert "no measured phase" in str(info.value)
    if name == "benchmark_model_failure.txt":
        assert "Node number 57 (BATCH_MATMUL) failed to prepare" in str(info.value)


def test_onnxruntime_perf_test_seconds_to_microseconds():
    r = parse_onnxruntime_perf_test(log("onnxruntime_perf_test_cobalt.txt"))
    assert r.count == 100
    assert r.avg_us == pytest.approx(1857.39)
    assert r.p50_us == pytest.approx(1856.74) and r.p90_us == pytest.approx(1872.15) and r.p99_us == pytest.approx(1903.12)
    assert r.min_us == pytest.approx(1834.04) and r.max_us == pytest.approx(1903.12)
    assert r.first_us == 2000 and r.init_us == pytest.approx(10201.6) and r.duration_s == 0.18581
    assert r.peak_memory_mb == pytest.approx(36696064 / 2**20)


def test_onnxruntime_perf_test_pre_2020_form():
    r = parse_onnxruntime_perf_test("Average time cost:58.8053 ms\nP50 Latency is 0.0587108sec\n")
    assert r.avg_us == pytest.approx(58805.3) and r.p50_us == pytest.approx(58710.8)


def test_benchmark_app_milliseconds_to_microseconds():
    r = parse_benchmark_app(log("benchmark_app_notebooks.txt"))
    assert (r.count, r.p50_us, r.avg_us, r.min_us, r.max_us) == (88380, 1820.0, 1830.0, 1200.0, 18410.0)
    assert r.duration_s == pytest.approx(15.00308)
    assert r.details["execution_devices"] == "['CPU']"


def test_benchmark_app_old_spacing_and_missing_stats():
    r = parse_benchmark_app("[ INFO ] Count:        5380 iterations\n[ INFO ] Duration:     60030.47 ms\n"
                            "[ INFO ] Latency:\n[ INFO ]     Median:     44.25 ms\n")
    assert (r.count, r.p50_us) == (5380, 44250.0)
    with pytest.raises(ToolOutputError):
        parse_benchmark_app("[ ERROR ] Failed to read the model\n")


def test_device_timer_json_and_garbage():
    line = json.dumps({"runs_us": [1000.0, 3000.0, 2000.0], "first_us": 5000.0, "duration_s": 0.006,
                       "runtime_version": "onnxruntime 1.0", "python": "3.11.7", "warmup_runs": 5, "details": {}})
    r = parse_device_timer("some warning\n" + line + "\n")
    assert (r.count, r.avg_us, r.min_us, r.max_us, r.first_us) == (3, 2000.0, 1000.0, 3000.0, 5000.0)
    assert r.runs_us == (1000.0, 3000.0, 2000.0) and r.runtime_version == "onnxruntime 1.0"
    with pytest.raises(ToolOutputError, match="Segmentation fault"):
        parse_device_timer("Segmentation fault (core dumped)\n")


@pytest.mark.parametrize(
    "stdout, code",
    [("rc=0\n", 0), ("noise\nrc=1\n", 1), ("rc=0\nrc=127\n", 127), ("rc=-9\n", -9), ("crc=0 prc=0\n", None),
     ("rc=\n", None), ("", None), ("rc=0 \n", 0)],
)  # fmt: skip
def test_tool_exit_code_is_the_last_rc_line(stdout, code):
    from benchmark.devices.runner import tool_exit_code

    assert tool_exit_code(stdout) == code


def test_litert_benchmark_results_block_in_microseconds():
    r = parse_litert_benchmark(log("litert_benchmark_cpu.txt"))
    assert (r.tool, r.count, r.avg_us, r.min_us, r.max_us, r.std_us) == ("litert-benchmark", 20, 42450.0, 33530.0, 57940.0,
                                                                          5970.0)  # fmt: skip
    assert (r.p50_us, r.p90_us, r.first_us, r.init_us, r.warmup_avg_us) == (41220.0, None, 36920.0, 50630.0, 37040.0)
    assert r.runs_us is None and r.delegate == "XNNPACK (LiteRT CPU accelerator)"
    assert r.details == {"p5_ms": 35.96, "p95_ms": 50.25, "warmup_runs": 3, "fully_accelerated": "False"}


@pytest.mark.parametrize(
    "text, said",
    [
        ("2026-12-04 20:04:07 ERROR benchmark_litert_model: Model file not found: /tmp/m.tflite\n",
         "(Model file not found: /tmp/m.tflite)"),
        ("Traceback (most recent call last):\n  File \"<frozen runpy>\", line 189\n"
         "ModuleNotFoundError: No module named 'ai_edge_litert'\n", "pip install ai-edge-litert there"),
        ("", "(no output)"),
    ],
)  # fmt: skip
def test_litert_benchmark_without_results_raises(text, said):
    with pytest.raises(ToolOutputError, match=r"^litert-benchmark: no BENCHMARK RESULTS in its output ") as error:
        parse_litert_benchmark(text)
    assert said in str(error.value)


def test_litert_benchmark_cut_off_before_its_measured_lines_raises():
    cut = log("litert_benchmark_cpu.txt").split("Inference (avg)")[0]
    with pytest.raises(ToolOutputError, match="no BENCHMARK RESULTS"):
        parse_litert_benchmark(cut)
