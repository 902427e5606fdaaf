"""Every real log in tests/fixtures/device_logs (SOURCES.md says where each was published) against
the figures read from it by eye: values in microseconds, delegate and coverage, runs, memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.devices.parsers import (
    ToolOutputError,
    parse_benchmark_app,
    parse_benchmark_model,
    parse_onnxruntime_perf_test,
)

LOGS = Path(__file__).parent / "fixtures" / "device_logs"
BM, APP, ORT = parse_benchmark_model, parse_benchmark_app, parse_onnxruntime_perf_test

# name, parser, (count, avg_us, init_us, first_us, peak_memory_mb), (delegate, coverage)
PARSED = [
    ("imx8mp_vx_npu_mobilenet_full.log", BM, (379, 2525.59, 12434, 4625131, 34.3164), ("EXTERNAL", "full")),
    ("imx8mp_vx_gpu_mobilenet_full.log", BM, (50, 163347, 12017, 1583707, 35.4844), ("EXTERNAL", "full")),
    ("imx8mp_vx_npu_deeplabv3_partial.log", BM, (77, 12828.4, 13718, 8468241, 50.3594), ("EXTERNAL", "partial")),
    ("imx8mp_vx_gpu_ssd_mobilenet_partial.log", BM, (50, 524719, 13294, 3838592, 49.8672), ("EXTERNAL", "partial")),
    ("imx8mp_vx_npu_inception_v4_full.log", BM, (50, 32511.5, 17554, 45893897, 116.148), ("EXTERNAL", "full")),
    ("imx8mp_cpu_deeplabv3.log", BM, (50, 1.05037e6, 108774, 1216820, 194.328), (None, None)),
    ("imx8mp_cpu_ssd_mobilenet.log", BM, (50, 343696, 121568, 474580, 15.5), (None, None)),
    ("tf43541_android_gpu_opencl_full.txt", BM, (50, 119375, 870557, 130565, None), ("GPU", "full")),
    ("xnnpack999_raspberrypi_xnnpack_default.txt", BM, (50, 55043.2, 18777, 64791, 18.7227), ("XNNPACK", None)),
    ("tf73862_linux_info_xnnpack_default.txt", BM, (74, 13520.2, 12750, 14744, None), ("XNNPACK", None)),
    ("tf61946_cmake_build_no_delegate.txt", BM, (50, 116066, 530, 124020, 12.1914), (None, None)),
    ("tf40183_tf22_average_inference_timings.txt", BM, (9, 1.68505e7, 48019, None, None), (None, None)),
    ("tf42507_android_init_memory_zero.txt", BM, (50, 33209.4, 855, 49060, 12.8672), (None, None)),
    ("imx8_snap_memory_zero_zero.txt", BM, (50, 210028, 2517, 217409, None), (None, None)),
    ("tf1_mobilenet_quant_no_stats.txt", BM, (50, 747733, 21039, None, None), (None, None)),
    ("tf1_readme_indented_no_stats.txt", BM, (50, 137722, 4452, None, None), (None, None)),
    ("benchmark_app_2024_1_cpu_gpu_npu_three_runs.txt", APP, (932, 43030, None, 51110, None), (None, None)),
    ("benchmark_app_2022_dynamic_two_groups.txt", APP, (5199, 46070, None, 26800, None), (None, None)),
    ("benchmark_app_docs_three_tensor_groups.txt", APP, (2811, 234560, None, 201150, None), (None, None)),
    ("ort_spacemit_k3_total_wording.txt", ORT, (10, 7270.205, 169475, 109000, 91336704 / 2**20), (None, None)),
    ("ort_arm_sme2_c1pro_total_wording.txt", ORT, (5, 98961.997, 217932, 196000, 271122432 / 2**20), (None, None)),
    ("ort_pr2798_windows_colon_no_space.txt", ORT, (1, 734606, 1841490, None, None), (None, None)),
    ("ort4331_armv8_duration_mode.txt", ORT, (7160, 83805.9, 133189, None, None), (None, None)),
    ("ort17313_pre2020_is_sec_form.txt", ORT, (1000, 58805.3, None, None, None), (None, None)),
]  # fmt: skip


@pytest.mark.parametrize("name, parse, figures, delegation", PARSED, ids=[row[0] for row in PARSED])
def test_real_log_figures(name, parse, figures, delegation):
    r = parse((LOGS / name).read_text())
    got = (r.count, r.avg_us, r.init_us, r.first_us, r.peak_memory_mb)
    assert got == tuple(f if f is None else pytest.approx(f) for f in figures)
    assert (r.delegate, r.delegate_coverage) == delegation


# name, parser, words the one-line refusal must hold
REFUSED = [
    ("tf56301_logcat_threadtime_nnapi_not_applied.txt", BM, "no measured phase"),
    ("tf58379_windows_gpu_cut_in_measured_phase.txt", BM, "(count=600 f)"),
    ("tf66025_ios_duplicated_lines_cut.txt", BM, "no measured phase"),
    ("yuenshome77_tf1_terminal_two_runs_second_cut.txt", BM, "the log holds 2 runs and the last (run 2) printed no "
                                                             "measurement"),
    ("ort_acl850_two_runs_second_cut.txt", ORT, "the log holds 2 runs and the last (run 2) printed no measurement"),
]  # fmt: skip


@pytest.mark.parametrize("name, parse, words", REFUSED, ids=[row[0] for row in REFUSED])
def test_real_log_without_a_last_measurement_is_refused_in_one_line(name, parse, words):
    with pytest.raises(ToolOutputError) as error:
        parse((LOGS / name).read_text())
    assert words in str(error.value) and "\n" not in str(error.value)


def test_logcat_threadtime_prefix_is_stripped_and_the_nnapi_refusal_read():
    from benchmark.devices.parsers.benchmark_model import delegations
    from benchmark.devices.parsers.common import clean_lines

    lines = clean_lines((LOGS / "tf56301_logcat_threadtime_nnapi_not_applied.txt").read_text())
    assert lines[1] == "Log parameter values verbosely: [0]"
    assert lines[0].startswith("Running TensorFlow Lite benchmark with args: --graph=/data/local/tmp/model.tflite")
    assert [(d.name, d.coverage) for d in delegations(lines)] == [("NNAPI", "none")]


@pytest.mark.parametrize("prefix", ["07-14 13:16:28.097 23002 23002 I tflite  : ", "    07-14 13:16:28.097  1234  1240 I tflite  : ",
                                    "07-14 13:16:28.097 I/tflite  (23002): ", "I/tflite  (23002): ", "I tflite  : "])  # fmt: skip
def test_every_logcat_format_parses_like_the_plain_log(prefix):
    plain = (LOGS / "xnnpack999_raspberrypi_xnnpack_default.txt").read_text()
    logcat = "\n".join(prefix + line for line in plain.splitlines())
    assert parse_benchmark_model(logcat) == parse_benchmark_model(plain)


def test_partial_delegation_keeps_node_counts_and_kernels():
    r = parse_benchmark_model((LOGS / "imx8mp_vx_npu_deeplabv3_partial.log").read_text())
    assert [(d.name, d.coverage, d.kernels) for d in r.delegations] == [("EXTERNAL", "partial", 1)]
    r = parse_benchmark_model((LOGS / "benchmark_model_xnnpack_peak_monitor.txt").read_text())
    assert (r.delegate, r.delegate_coverage, r.delegated_nodes, r.total_nodes) == ("TfLiteXNNPackDelegate", "full", 58, 58)


def test_zero_zero_memory_is_not_reported_and_says_so():
    r = parse_benchmark_model((LOGS / "imx8_snap_memory_zero_zero.txt").read_text())
    assert r.peak_memory_mb is None and r.memory == {}
    assert "init=0 overall=0" in r.details["memory"]
    r = parse_benchmark_model((LOGS / "tf42507_android_init_memory_zero.txt").read_text())
    assert r.memory == {"max_rss_init_mb": 0.0, "max_rss_overall_mb": 12.8672} and "memory" not in r.details


def test_tf1_summary_gives_warmup_average_and_no_first_inference():
    r = parse_benchmark_model((LOGS / "tf40183_tf22_average_inference_timings.txt").read_text())
    assert (r.warmup_avg_us, r.min_us, r.max_us, r.std_us) == (1.59086e7, 16767506, 17015249, 69772)


def test_three_run_terminal_log_reports_the_last_run_and_says_so():
    r = parse_benchmark_app((LOGS / "benchmark_app_2024_1_cpu_gpu_npu_three_runs.txt").read_text())
    assert (r.p50_us, r.min_us, r.max_us) == (42830, 22870, 74750)
    assert r.details["execution_devices"] == "NPU.3720" and r.details["runs_in_log"] == 3
    assert r.runtime_version == "openvino 2024.1.0-15008-f4afc983258-releases/2024/1"


def test_shape_groups_are_kept_apart():
    r = parse_benchmark_app((LOGS / "benchmark_app_2022_dynamic_two_groups.txt").read_text())
    assert (r.p50_us, r.min_us, r.max_us, r.duration_s) == (41580, 8440, 115650, pytest.approx(60.04334))
    assert r.details["shape_groups"] == [
        {"shape": "data : [1, 3, 224, 224]", "median_ms": 38.37, "average_ms": 30.29, "min_ms": 8.44, "max_ms": 61.30},
        {"shape": "data : [1, 3, 448, 448]", "median_ms": 68.21, "average_ms": 61.85, "min_ms": 29.58, "max_ms": 115.65},
    ]


def test_openvino_2019_single_latency_line_and_percentile_form():
    # OpenVINO 2019's statistics lines (no log of that release was found published; the form is its source's).
    r = parse_benchmark_app("[Step 11/11] Dumping statistics report\n[ INFO ] Latency: 8.53 ms\n[ INFO ] Throughput: 117.21 FPS\n")
    assert (r.count, r.p50_us, r.avg_us) == (None, 8530.0, 8530.0)
    r = parse_benchmark_app("[ INFO ] Count:      100 iterations\n[ INFO ] Latency:\n[ INFO ]    90 percentile:     2.50 ms\n"
                            "[ INFO ]    Average:       2.00 ms\n")  # fmt: skip
    assert (r.p50_us, r.avg_us, r.details["latency_percentile"]) == (None, 2000.0, 90)


def test_ort_latencies_in_seconds_and_new_wording():
    r = parse_onnxruntime_perf_test((LOGS / "ort_arm_sme2_c1pro_total_wording.txt").read_text())
    assert (r.min_us, r.max_us, r.p50_us, r.p90_us, r.p99_us) == pytest.approx((95820.4, 101519, 99508.6, 101519, 101519))
    assert r.duration_s == 0.494854
    r = parse_onnxruntime_perf_test((LOGS / "ort17313_pre2020_is_sec_form.txt").read_text())
    assert (r.min_us, r.p50_us, r.duration_s) == pytest.approx((55977.7, 58710.8, 58.8102))


@pytest.mark.parametrize(
    "name, wanted, fallback",
    [("tf56301_logcat_threadtime_nnapi_not_applied.txt", "nnapi", True),
     ("tf43541_android_gpu_opencl_full.txt", "gpu", False),
     ("tf58379_windows_gpu_cut_in_measured_phase.txt", "gpu", False),
     ("xnnpack999_raspberrypi_xnnpack_default.txt", "xnnpack", False),
     ("tf61946_cmake_build_no_delegate.txt", "xnnpack", False),  # says nothing: not flagged
     ("imx8mp_vx_gpu_ssd_mobilenet_partial.log", "gpu", False)],
)  # fmt: skip
def test_fallback_is_flagged_only_when_the_log_says_the_delegate_took_nothing(name, wanted, fallback):
    from benchmark.devices.device_record import delegate_fallback
    from benchmark.devices.parsers import ToolResult
    from benchmark.devices.parsers.benchmark_model import delegations
    from benchmark.devices.parsers.common import clean_lines

    said = delegations(clean_lines((LOGS / name).read_text()))
    flagged = delegate_fallback(ToolResult(tool="benchmark_model", count=1, avg_us=1.0, delegations=said), wanted)
    assert (flagged is not None) == fallback
    if fallback:
        assert flagged.startswith("--delegate nnapi: the tool says the delegate took none of the graph (Though NNAPI")
