"""``bench latency --device adb`` through a fake ``adb`` first on PATH (tests/fake_adb/): the phone is
a folder (getprop, cpufreq and thermal files from a JSON), and a fake benchmark_model prints a
recorded log. Kept for what the real adbd of tests/test_devices_adb_real.py cannot show: an
unauthorized, offline or second device, a phone's big and little cores (the taskset pin), a full
phone, a Ctrl-C reaching a terminal's whole process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import completed

from benchmark.cli import main

REPO = Path(__file__).resolve().parents[1]
FAKE = Path(__file__).parent / "fake_adb"
LOGS = Path(__file__).parent / "fixtures" / "device_logs"
MODEL = ["--task", "classification", "--backbone", "mnv1", "--width", "0.25", "--resolution", "128"]
QUICK = ["--tier", "quick", "--warmup-runs", "2", "--warmup-seconds", "0.1", "--min-runs", "10", "--min-seconds", "0.3"]
PROPS = {"ro.product.model": "Pixel 8", "ro.product.manufacturer": "Google", "ro.soc.model": "Tensor G3",
         "ro.board.platform": "zuma", "ro.product.cpu.abi": "arm64-v8a", "ro.build.version.release": "14",
         "ro.build.version.sdk": "34"}  # fmt: skip


def phone(tmp_path: Path, devices=(("SER123", "device"),), log: str = "benchmark_model_xnnpack_peak_monitor.txt",
          exit_code: int = 0, props: dict[str, str] = PROPS, **state) -> dict[str, str]:  # fmt: skip
    """The fake phone's folder and the environment that puts the fake adb first on PATH; ``state``
    goes into the fake's JSON as is (push_errors, tool_sleep_s: tests/fake_adb/adb)."""
    root = tmp_path / "phone"
    (root / "data/local/tmp").mkdir(parents=True)
    for cpu in range(8):  # 4 little cores at 1.8 GHz, 4 big at 2.4 GHz: big-core mask f0
        freq = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "cpuinfo_max_freq").write_text("2400000\n" if cpu >= 4 else "1800000\n")
        (freq / "scaling_governor").write_text("schedutil\n")
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("41000\n")
    (zone / "type").write_text("cpu-big\n")
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps({"devices": [list(d) for d in devices], "props": props, **state}))
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy(FAKE / "benchmark_model", tools / "benchmark_model")
    return dict(os.environ, PATH=f"{FAKE}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO), FAKE_ADB_ROOT=str(root),
                FAKE_ADB_STATE=str(state_file), FAKE_BM_LOG=str(LOGS / log), FAKE_BM_EXIT=str(exit_code),
                BENCH_DEVICE_TOOLS=str(tmp_path / "cache"))  # fmt: skip


def bench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark.cli", "latency", *MODEL, *args], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip


def bench_here(env: dict[str, str], monkeypatch, capsys, *args: str) -> subprocess.CompletedProcess:
    """``bench`` in this process (the CLI's own main, the fake phone's environment set): the failure
    paths need no process of their own, and a subprocess spends most of its time importing torch."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return completed(["latency", *MODEL, *args], capsys)


def test_adb_push_pin_run_parse_clean(tmp_path, monkeypatch, capsys):
    env = phone(tmp_path)
    tool = str(tmp_path / "tools" / "benchmark_model")
    done = bench_here(env, monkeypatch, capsys, *QUICK, "--runtime", "litert", "--device", "adb", "--device-tool", tool, "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    root = Path(env["FAKE_ADB_ROOT"])
    argv = json.loads((root / "argv.json").read_text())
    work = str(Path(argv[2]).parent)
    assert work.startswith("/data/local/tmp/bench-")
    assert argv == [
        "taskset", "f0", f"{work}/benchmark_model", f"--graph={work}/mnv1-litert.tflite", "--num_threads=1",
        "--warmup_runs=2", "--warmup_min_secs=0.1", "--num_runs=10", "--min_secs=0.3", "--max_secs=20",
        "--use_xnnpack=true", "--report_peak_memory_footprint=true",
    ]  # fmt: skip
    assert list((root / "data/local/tmp").iterdir()) == []  # the work folder was removed
    (path,) = (tmp_path / "out").glob("*.json")
    record = json.loads(path.read_text())
    target = record["target"]
    assert (target["transport"], target["address"], target["model"], target["soc"], target["abi"]) == (
        "adb", "adb:SER123", "Pixel 8", "Tensor G3", "arm64-v8a")
    assert target["max_freqs_khz"] == [1800000] * 4 + [2400000] * 4 and target["governors"] == ["schedutil"] * 8
    assert target["cpu_mask"] == "f0" and target["temp_before_c"] == 41.0 and target["temp_after_c"] == 41.0
    assert (target["delegated_nodes"], target["total_nodes"], target["delegate_fallback"]) == (58, 58, None)
    # The recorded log's measured phase (count=1061, avg 56265.8 us), not its warm-up (count=9).
    assert record["runs"] == 1061 and record["mean_ms"] == pytest.approx(56.2658) and record["min_ms"] == 54.669
    assert record["peak_memory_mb"] == 93.2383
    assert path.with_suffix(".log").read_text() == (LOGS / "benchmark_model_xnnpack_peak_monitor.txt").read_text()


def test_crashing_tool_is_one_line_exit_2_no_record_folder_cleaned(tmp_path, monkeypatch, capsys):
    env = phone(tmp_path, log="benchmark_model_failure.txt", exit_code=1)
    tool = str(tmp_path / "tools" / "benchmark_model")
    done = bench_here(env, monkeypatch, capsys, *QUICK, "--runtime", "litert", "--device", "adb:SER123", "--device-tool", tool,
                 "--cpu-mask", "3", "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Node number 57 (BATCH_MATMUL) failed to prepare" in done.stderr and "Traceback" not in done.stderr
    assert json.loads((Path(env["FAKE_ADB_ROOT"]) / "argv.json").read_text())[:2] == ["taskset", "3"]
    assert list((Path(env["FAKE_ADB_ROOT"]) / "data/local/tmp").iterdir()) == []
    assert not list((tmp_path / "out").glob("*.json")) if (tmp_path / "out").exists() else True


@pytest.mark.parametrize(
    "devices, target, message",
    [
        ((), "adb", "no device attached"),
        ((("A1", "device"), ("B2", "device")), "adb", "2 devices attached (A1, B2); name one with --device adb:SERIAL"),
        ((("A1", "unauthorized"),), "adb", "unauthorized; accept the USB debugging prompt"),
        ((("A1", "offline"),), "adb:A1", "the device is offline"),
        ((("A1", "device"),), "adb:ZZ", "adb:ZZ: no such device"),
        ((("A1", "device"),), "adb", "no benchmark_model binary"),  # no --device-tool, empty cache folder
    ],
)
def test_bad_adb_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys, devices, target, message):
    # In-process (the CLI's own main): these fail before anything is exported, and a subprocess per
    # case would spend its time importing torch.
    for key, value in phone(tmp_path, devices=devices).items():
        monkeypatch.setenv(key, value)
    code = main(["latency", *MODEL, "--runtime", "litert", "--device", target, "--output", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert code == 2, stderr[-2000:]
    error = [line for line in stderr.strip().splitlines() if line.startswith("bench")]
    assert len(error) == 1 and message in error[0]
    assert not (tmp_path / "out").exists()


def test_litert_benchmark_is_refused_on_adb(tmp_path, monkeypatch, capsys):
    for key, value in phone(tmp_path).items():
        monkeypatch.setenv(key, value)
    code = main(["latency", *MODEL, "--runtime", "litert", "--device", "adb", "--device-tool", "litert-benchmark",
                 "--output", str(tmp_path / "out")])  # fmt: skip
    stderr = capsys.readouterr().err
    assert code == 2, stderr[-2000:]
    (error,) = bench_errors(stderr)
    assert "--device-tool litert-benchmark: a Python tool (pip ai-edge-litert on the target), for --device ssh://" in error
    assert not (tmp_path / "out").exists()


def test_no_adb_on_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if shutil.which("adb"):
        pytest.skip("a real adb is installed in /usr/bin")
    code = main(["latency", *MODEL, "--runtime", "litert", "--device", "adb", "--output", str(tmp_path / "out")])
    assert code == 2 and "no adb on PATH" in capsys.readouterr().err


EM_AARCH64 = 183


def elf_stub(path: Path, machine: int) -> Path:
    """An executable that is only a 64-bit little-endian ELF header for ``machine``: its ABI is read
    before any push, and a kernel refuses to run it (Exec format error)."""
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    path.write_bytes(ident + (2).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44))
    path.chmod(0o755)
    return path


def bench_errors(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if line.startswith("bench")]


def phone_is_clean(env: dict[str, str]) -> bool:
    return list((Path(env["FAKE_ADB_ROOT"]) / "data/local/tmp").iterdir()) == []


def test_tool_for_another_cpu_is_refused_before_anything_is_pushed(tmp_path, monkeypatch, capsys):
    props = dict(PROPS, **{"ro.product.cpu.abi": "x86_64", "ro.product.cpu.abilist": "x86_64,x86"})
    for key, value in phone(tmp_path, props=props).items():  # an x86_64 emulator
        monkeypatch.setenv(key, value)
    tool = elf_stub(tmp_path / "android_aarch64_benchmark_model", EM_AARCH64)
    code = main(["latency", *MODEL, "--runtime", "litert", "--device", "adb", "--device-tool", str(tool),
                 "--output", str(tmp_path / "out")])  # fmt: skip
    stderr = capsys.readouterr().err
    assert code == 2, stderr[-2000:]
    (error,) = bench_errors(stderr)
    assert f"--device-tool {tool}: built for aarch64 64-bit, but adb:SER123 is x86_64" in error
    shell_log = (Path(os.environ["FAKE_ADB_ROOT"]) / "shell.log").read_text()
    assert "mktemp" not in shell_log and phone_is_clean(os.environ)  # no work folder was ever made
    assert not (tmp_path / "out").exists()


def test_exec_format_error_on_the_device_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    # The phone says arm64-v8a, so the header passes; the kernel (this host's) refuses the file.
    env = phone(tmp_path)
    tool = elf_stub(tmp_path / "tools" / "benchmark_model", EM_AARCH64)
    done = bench_here(env, monkeypatch, capsys, *QUICK, "--runtime", "litert", "--device", "adb", "--device-tool", str(tool),
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    (error,) = bench_errors(done.stderr)
    assert "the device (arm64-v8a) cannot execute benchmark_model, an aarch64 64-bit ELF file" in error
    # The kernel's words, or qemu-user's where binfmt_misc runs aarch64 files here (the device lab registers it).
    assert ("Exec format error" in error or "Invalid ELF image for this architecture" in error), error
    assert "use a benchmark_model built for arm64-v8a" in error
    assert "Traceback" not in done.stderr and phone_is_clean(env)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_full_phone_is_one_line_with_the_folder_and_the_size(tmp_path, monkeypatch, capsys):
    refusal = ("adb: error: failed to copy '{source}' to '{target}': remote couldn't create file: "
               "No space left on device")  # fmt: skip
    env = phone(tmp_path, push_errors={"benchmark_model": refusal})  # the model file fits, the tool does not
    tool = tmp_path / "tools" / "benchmark_model"
    done = bench_here(env, monkeypatch, capsys, *QUICK, "--runtime", "litert", "--device", "adb", "--device-tool", str(tool),
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    (error,) = bench_errors(done.stderr)
    folder = error.split("no space left on the device in ", 1)[1].split(":", 1)[0]
    assert folder.startswith("/data/local/tmp/bench-"), error
    assert f"benchmark_model needs {tool.stat().st_size} bytes; the run needs " in error and f"in {folder} in all" in error
    assert "Traceback" not in done.stderr and phone_is_clean(env)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def processes_under(root: Path) -> list[int]:
    """Pids of the processes whose command line names ``root`` (the fake phone's tool runs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(root).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("how", ["SIGINT-to-bench", "Ctrl-C-in-a-terminal", "SIGTERM-to-bench"])
def test_ctrl_c_while_the_tool_runs_stops_it_cleans_the_phone_and_writes_no_record(tmp_path, how):
    # A terminal's Ctrl-C reaches the whole process group (bench, adb, the phone's shell); the
    # tool, started in the background by that shell, ignores it and must be stopped by bench.
    env = phone(tmp_path, tool_sleep_s=600)
    root = Path(env["FAKE_ADB_ROOT"])
    tool = str(tmp_path / "tools" / "benchmark_model")
    process = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "latency", *MODEL, *QUICK, "--runtime", "litert",
                                "--device", "adb", "--device-tool", tool, "--json", "--output", str(tmp_path / "out")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               process_group=0)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not (root / "argv.json").exists():  # the fake benchmark_model writes it, then sleeps
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
            time.sleep(0.2)
        (work,) = (root / "data/local/tmp").iterdir()
        if how == "Ctrl-C-in-a-terminal":
            os.killpg(process.pid, signal.SIGINT)
        else:  # SIGTERM (a scheduler's or kill's) is handled as Ctrl-C
            process.send_signal(signal.SIGTERM if how == "SIGTERM-to-bench" else signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        deadline = time.monotonic() + 10  # the tool's shell on the "phone" exits just after the tool
        while processes_under(root) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_under(root)
        for pid in left:  # a tool left running would sleep on: end it, then fail below
            os.kill(pid, signal.SIGKILL)
    assert process.returncode == 130, stderr[-2000:]
    assert left == [], "the tool was left running on the phone"
    (line,) = bench_errors(stderr)
    assert line == (f"bench latency: interrupted: --device adb:SER123: stopped, the work folder /data/local/tmp/{work.name} "
                    "removed, no record of litert written")  # fmt: skip
    assert "Traceback" not in stderr and phone_is_clean(env)
    assert "kill" in (root / "shell.log").read_text()  # the tool was stopped on the phone, not just abandoned
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.device
@pytest.mark.skipif(not os.environ.get("BENCH_ADB_SERIAL"), reason="set BENCH_ADB_SERIAL to time on a real phone")
def test_real_phone(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = bench(env, *QUICK, "--runtime", "litert", "--device", f"adb:{os.environ['BENCH_ADB_SERIAL']}",
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = (tmp_path / "out").glob("*.json")
    assert json.loads(path.read_text())["target"]["transport"] == "adb"
