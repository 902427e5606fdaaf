"""``bench latency --device adb:...`` through the REAL adb client and a REAL adbd (Debian's ``adb`` and
``adbd``; .ci/install-adbd installs them), started and stopped by pid by the test.

adbd needs no authentication and listens on every interface as root, so it runs in a network
namespace of its own (loopback only), on a port outside 5555-5585 (which adb's server would scan as
emulators), and the adb server and every client call (bench included) run in that namespace. A
Linux adbd has no Android userland: a ``getprop`` stand-in on its PATH answers the identity
properties. The fake adb (tests/fake_adb) is kept for what no real daemon can show: unauthorized,
offline, two devices with no serial.

Skipped, with the reason, where adbd cannot be had; with ``BENCH_REQUIRE=all`` (or a list holding
``adbd``) the same condition FAILS instead, so CI cannot pass by skipping.
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

REPO = Path(__file__).resolve().parents[1]
ADBD = "/usr/lib/android-sdk/platform-tools/adbd"
PORT = 40555  # outside 5555-5585: adb's server would otherwise take the daemon for an emulator
MODEL = ["--task", "classification", "--backbone", "mnv1", "--width", "0.25", "--resolution", "128"]
QUICK = ["--tier", "quick", "--warmup-runs", "2", "--warmup-seconds", "0.1", "--min-runs", "10", "--min-seconds", "0.3"]
PROPS = {"ro.product.model": "Debian adbd", "ro.product.manufacturer": "bench-test", "ro.product.cpu.abi": "x86_64"}


def missing() -> str | None:
    """Why a real adbd cannot run here, or None."""
    if not (os.access(ADBD, os.X_OK) and shutil.which("adb")):
        return f"no real adb/adbd here ({ADBD}, adb); run .ci/install-adbd (apt: adb, adbd from bookworm-backports)"
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "a real adbd needs root and iproute2 (ip netns) to run in its own network namespace"
    return None


def required() -> bool:
    wanted = {w.strip() for w in os.environ.get("BENCH_REQUIRE", "").split(",")}
    return "all" in wanted or "adbd" in wanted


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def adbd(tmp_path_factory):
    reason = missing()
    if reason:
        if required():
            pytest.fail(f"BENCH_REQUIRE asks for adbd: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("adbd")
    stubs = folder / "bin"
    stubs.mkdir()
    (folder / "props.json").write_text(json.dumps(PROPS))
    getprop = stubs / "getprop"  # Android's getprop, answered from a JSON file
    getprop.write_text(f"#!{sys.executable}\nimport json, sys\nprops = json.load(open({str(folder / 'props.json')!r}))\n"
                       "print(props.get(sys.argv[1], '') if len(sys.argv) > 1 else '')\n")  # fmt: skip
    getprop.chmod(0o755)
    namespace = f"bench-adbd-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    inside = ["ip", "netns", "exec", namespace]
    daemon = server = None
    try:
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        env = dict(os.environ, ADBD_PORT=str(PORT), PATH=f"{stubs}:/usr/bin:/bin:/usr/sbin:/sbin")
        daemon = subprocess.Popen([*inside, ADBD], env=env, stdout=open(folder / "adbd.log", "w"), stderr=subprocess.STDOUT)
        server = subprocess.Popen([*inside, "adb", "nodaemon", "server"], stdout=open(folder / "server.log", "w"),
                                  stderr=subprocess.STDOUT)  # fmt: skip
        serial = f"127.0.0.1:{PORT}"
        deadline = time.monotonic() + 30
        while True:
            subprocess.run([*inside, "adb", "connect", serial], capture_output=True, text=True, timeout=30)
            listed = subprocess.run([*inside, "adb", "devices"], capture_output=True, text=True, timeout=30).stdout
            if f"{serial}\tdevice" in listed:
                break
            assert daemon.poll() is None and time.monotonic() < deadline, (folder / "adbd.log").read_text()[-2000:]
            time.sleep(0.5)
        yield {"inside": inside, "serial": serial, "daemon": daemon, "server": server}
    finally:
        for process in (server, daemon):
            if process is not None:
                stop(process)
        subprocess.run(["ip", "netns", "del", namespace], check=False)


def bench(adbd, *args: str) -> subprocess.CompletedProcess:
    # albumentations asks PyPI for its latest version at import and warns when it cannot (no network in
    # the namespace): that warning is the library's, not the run's (see the report to the coordinator).
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.run([*adbd["inside"], sys.executable, "-m", "benchmark.cli", "latency", *MODEL, *args],
                          capture_output=True, text=True, env=env, timeout=900)  # fmt: skip


def test_real_adb_shell_gives_exit_codes_and_stderr_apart(adbd):
    done = subprocess.run([*adbd["inside"], "adb", "-s", adbd["serial"], "shell", "echo out; echo err >&2; exit 3"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout.strip(), done.stderr.strip()) == (3, "out", "err")


def test_real_adb_end_to_end_push_run_pull_and_gate(adbd, tmp_path):
    device_root = tmp_path / "device-root"  # /data/local/tmp does not exist on a Linux adbd
    device_root.mkdir()
    target = f"adb:{adbd['serial']}"
    done = bench(adbd, *QUICK, "--runtime", "onnxruntime", "--device", target, "--device-tool", "script",
                 "--device-python", sys.executable, "--device-root", str(device_root), "--output", str(tmp_path / "out"),
                 "--data", "synthetic", "--accuracy-images", "8")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = sorted((tmp_path / "out").glob("*.json"))
    record = json.loads(path.read_text())
    block = record["target"]
    assert (block["transport"], block["address"], block["model"], block["manufacturer"]) == (
        "adb", target, "Debian adbd", "bench-test")
    assert block["tool"]["name"] == "bench-device-timer" and block["tool"]["argv"][0] == sys.executable
    assert record["runs"] >= 10 and 0 < record["min_ms"] <= record["p50_ms"] <= record["max_ms"]
    assert record["runtime_version"].startswith("onnxruntime ")
    gate = record["accuracy"]  # the gate's batches pushed, run by the real adbd's shell, outputs pulled
    assert gate["images"] == 8 and gate["agreement"] == 100.0 and gate["max_abs_diff"] < 1e-3, gate
    assert json.loads(path.with_suffix(".log").read_text().strip().splitlines()[-1])["runs_us"]
    assert list(device_root.iterdir()) == []  # the work folder was removed through adb


def test_real_adb_missing_python_is_one_line_exit_2(adbd, tmp_path):
    device_root = tmp_path / "device-root"
    device_root.mkdir()
    done = bench(adbd, *QUICK, "--runtime", "onnxruntime", "--device", f"adb:{adbd['serial']}", "--device-tool", "script",
                 "--device-python", "/nonexistent/python3", "--device-root", str(device_root))  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not found on the device" in lines[0], done.stderr[-2000:]
    assert list(device_root.iterdir()) == []


def test_no_device_on_an_unknown_serial_through_the_real_server(adbd, tmp_path):
    done = bench(adbd, "--runtime", "litert", "--device", "adb:127.0.0.1:40999")
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("bench")]
    assert line == (f"bench latency: error: --device adb:127.0.0.1:40999: no such device (adb devices lists "
                    f"{adbd['serial']})")  # fmt: skip


LOGS = Path(__file__).parent / "fixtures" / "device_logs"


def stand_in_tool(tmp_path: Path, log: str, sleep_s: int = 0) -> Path:
    """A benchmark_model stand-in for the x86 "phone": records its argv and pid, then prints a real
    recorded log (an i.MX8M Plus NPU run); pushed and run through the real adb like the real binary."""
    tool = tmp_path / "benchmark_model"
    tool.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/tool.pid\necho \"$@\" > {tmp_path}/argv.txt\nsleep {sleep_s}\n"
                    f"cat {LOGS / log}\n")  # fmt: skip
    tool.chmod(0o755)
    return tool


def test_real_adb_pushes_and_runs_a_benchmark_model(adbd, tmp_path):
    device_root = tmp_path / "device-root"
    device_root.mkdir()
    tool = stand_in_tool(tmp_path, "imx8mp_vx_npu_mobilenet_full.log")
    done = bench(adbd, *QUICK, "--runtime", "litert", "--device", f"adb:{adbd['serial']}", "--device-tool", str(tool),
                 "--device-root", str(device_root), "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = sorted((tmp_path / "out").glob("*.json"))
    record = json.loads(path.read_text())
    assert (record["runs"], record["mean_ms"], record["peak_memory_mb"]) == (379, pytest.approx(2.52559), 34.3164)
    block = record["target"]
    assert (block["delegate"], block["delegate_coverage"], block["delegate_fallback"]) == ("EXTERNAL", "full", None)
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[0].startswith("--graph=" + str(device_root)) and "--num_runs=10" in argv and "--use_xnnpack=true" in argv
    assert list(device_root.iterdir()) == []


def test_sigterm_on_a_real_adbd_stops_the_tool_cleans_up_and_records_nothing(adbd, tmp_path):
    device_root = tmp_path / "device-root"
    device_root.mkdir()
    tool = stand_in_tool(tmp_path, "imx8mp_vx_npu_mobilenet_full.log", sleep_s=600)
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_ALBUMENTATIONS_UPDATE="1")
    process = subprocess.Popen([*adbd["inside"], sys.executable, "-m", "benchmark.cli", "latency", *MODEL, *QUICK,
                                "--runtime", "litert", "--device", f"adb:{adbd['serial']}", "--device-tool", str(tool),
                                "--device-root", str(device_root), "--output", str(tmp_path / "out")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not (tmp_path / "argv.txt").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
            time.sleep(0.2)
        (work,) = device_root.iterdir()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        stop(process)
    pid = int((tmp_path / "tool.pid").read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = Path(f"/proc/{pid}").exists()
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert process.returncode == 130, stderr[-2000:]
    assert not alive, "the tool was left running on the device"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [f"bench latency: interrupted: --device adb:{adbd['serial']}: stopped, the work folder {work} removed, "
                     "no record of litert written"], stderr[-2000:]  # fmt: skip
    assert list(device_root.iterdir()) == [] and not (tmp_path / "out").exists()
