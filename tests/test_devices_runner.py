"""The device runner's ways out: Ctrl-C while the work folder is being made leaves nothing; a
failure after export is one line alone; litert-benchmark honours the tier's runs and seconds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_helpers import completed

from benchmark.devices.device_record import Exported
from benchmark.devices.parsers import ToolResult
from benchmark.devices.runner import DeviceOptions, Session, Target, _measure_file
from benchmark.devices.tools import LitertBenchmark, TimerScript, ToolRun
from benchmark.devices.transports import LocalTransport
from benchmark.latency.timing import Tier

TIER = Tier("quick", warmup_runs=1, warmup_s=0.0, min_runs=20, min_s=3.0, max_s=60.0)


class CtrlCWhileMaking(LocalTransport):
    """A target whose ``mkdir`` is interrupted by Ctrl-C after the folder exists (the worst moment)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def shell(self, argv, timeout=None):
        self.calls.append(list(argv))
        done = super().shell(argv, timeout)
        if argv[0] == "mkdir":
            raise KeyboardInterrupt
        return done


def test_ctrl_c_while_the_work_folder_is_made_leaves_nothing(tmp_path):
    root = tmp_path / "device"
    root.mkdir()
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    options = DeviceOptions(runtimes=("onnxruntime",), threads=1, tier=TIER, root=str(root))
    transport = CtrlCWhileMaking()
    session = Session(transport, options, Target({"onnxruntime": TimerScript()}, {}, None), tmp_path, None, None, None)
    with pytest.raises(KeyboardInterrupt, match=r"stopped, the work folder .*/bench-[0-9a-f]{12} removed, no record of "
                                                r"onnxruntime written"):  # fmt: skip
        _measure_file(session, Exported("onnxruntime", "onnx", False, model, [model], {}))
    assert list(root.iterdir()) == []
    assert [call[0] for call in transport.calls] == ["mkdir", "sh", "rm"]  # made, the tool (none) stopped, removed


def litert_result(count: int, avg_ms: float, min_ms: float) -> ToolResult:
    return ToolResult(tool="litert-benchmark", count=count, avg_us=avg_ms * 1000.0, min_us=min_ms * 1000.0)


def test_litert_benchmark_reruns_to_fill_the_tiers_seconds():
    tool = LitertBenchmark()
    run = ToolRun(work="/w", model="/w/m.tflite", inputs="/w/input.npy", threads=2, tier=TIER, python="python3")
    assert tool.argv(run)[-1] == "--num_runs=20"
    # 20 runs of 42.45 ms (the fastest 33.53 ms) is 0.85 s < 3 s: ceil(3 / 0.03353 * 1.05) = 94 runs next.
    assert tool.rerun_runs(litert_result(20, 42.45, 33.53), TIER) == 94
    assert LitertBenchmark(runs=94).argv(run)[-1] == "--num_runs=94"
    assert tool.rerun_runs(litert_result(94, 42.45, 33.53), TIER) is None  # 3.99 s: the tier is met
    assert tool.rerun_runs(litert_result(20, 200.0, 190.0), TIER) is None  # 4 s at once
    assert tool.rerun_runs(litert_result(20, 2.0, 2.0), Tier("t", 1, 0.0, 20, 3.0, max_s=0.5)) == 250  # capped by max_s
    assert tool.rerun_runs(litert_result(250, 2.0, 2.0), Tier("t", 1, 0.0, 20, 3.0, max_s=0.5)) is None  # no more


@pytest.fixture
def latency(tmp_path: Path, monkeypatch, capsys):
    """``bench latency`` on a small model, in this process, from ``tmp_path`` with a bare PATH."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    model = ["--task", "classification", "--backbone", "mnv1", "--width", "0.25", "--resolution", "96"]
    return lambda *args: completed(["latency", *model, *args], capsys)


def test_litert_benchmark_on_local_target_honours_runs_and_seconds(tmp_path, latency):
    pytest.importorskip("ai_edge_litert")
    done = latency("--runtime", "litert", "--device", "local", "--device-tool", "litert-benchmark",
                 "--device-python", sys.executable, "--tier", "quick", "--warmup-runs", "2", "--warmup-seconds", "0",
                 "--min-runs", "5", "--min-seconds", "1.0", "--threads", "1", "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    runs, mean_ms = record["runs"], record["mean_ms"]
    assert runs >= 5 and runs * mean_ms >= 1000.0, (runs, mean_ms)  # the tier's seconds
    assert record["target"]["tool"]["argv"][-1] == f"--num_runs={runs}"
    assert record["runtime_version"].startswith("ai_edge_litert ")


def test_failure_after_export_is_its_one_error_line_alone(tmp_path, latency):
    # --device-python names no Python on the target: the export succeeds, the device run fails.
    done = latency("--runtime", "onnxruntime", "--device", "local", "--device-python", "/nonexistent/python3",
                 "--tier", "quick", "--min-runs", "3", "--min-seconds", "0.1", "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("bench latency: error: --device localhost"), done.stderr[-3000:]
    assert "not found" in lines[0]


def test_the_runtime_registry_says_which_runtimes_a_device_can_time() -> None:
    from benchmark.latency.runtimes import RUNTIMES, device_runtimes

    chosen = device_runtimes()
    assert sorted(chosen) == ["litert", "litert-int8", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-int8"]
    assert {name: runtime.export_format for name, runtime in chosen.items()} == {
        "litert": "tflite", "litert-int8": "tflite", "onnxruntime": "onnx", "onnxruntime-int8": "onnx",
        "openvino": "openvino", "openvino-int8": "openvino"}  # fmt: skip
    assert RUNTIMES["openvino-bf16"].targets == ("host",) and RUNTIMES["eager"].export_format is None
