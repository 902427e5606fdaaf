"""``bench latency --device`` on a real aarch64 userland: the device lab (``.ci/device-lab``: Debian arm64 under
qemu-user, python3 + ai-edge-litert + onnxruntime, an ssh board and an adb device on loopback).

``make device-lab-test`` builds the lab once (cached under $BENCH_CACHE) and runs this file with
BENCH_DEVICE_LAB=1; elsewhere it skips, saying why. Emulated inference is some 300x slower than native, so
the model is tiny and the runs few: the timings are the emulator's, and the records say "emulated".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / ".ci" / "device-lab"
# The lab is built once in the user's cache; read before conftest points BENCH_CACHE at a session temp dir.
LAB_DIR = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "mobile-vision-bench")) / "device-lab"
MODEL = ["--task", "classification", "--backbone", "mnv1", "--width", "0.25", "--resolution", "64"]
TINY = ["--tier", "quick", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "3", "--min-seconds", "0",
        "--threads", "1", "--data", "synthetic", "--accuracy-images", "4"]  # fmt: skip

if not os.environ.get("BENCH_DEVICE_LAB"):
    pytest.skip("the aarch64 device lab runs with make device-lab-test (BENCH_DEVICE_LAB=1)", allow_module_level=True)


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.fail("the device lab needs root (chroot, mounts, ip netns)")
    env = dict(os.environ, BENCH_LAB_DIR=str(LAB_DIR))
    started = subprocess.run([str(LAB), "start"], capture_output=True, text=True, timeout=600, env=env)
    assert started.returncode == 0, started.stderr[-3000:]
    facts = dict(line.split("=", 1) for line in started.stdout.split())
    try:
        yield facts
    finally:
        subprocess.run([str(LAB), "stop"], capture_output=True, text=True, timeout=120, env=env)


def bench(*args: str, netns: str | None = None) -> subprocess.CompletedProcess:
    inside = ["ip", "netns", "exec", netns] if netns else []
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.run([*inside, sys.executable, "-m", "benchmark.cli", "latency", *MODEL, *args],
                          capture_output=True, text=True, env=env, timeout=1800)  # fmt: skip


def check_record(folder: Path, runtime: str, transport: str) -> dict:
    (path,) = sorted(folder.glob(f"*{runtime}*.json"))
    record = json.loads(path.read_text())
    target = record["target"]
    assert (target["transport"], target["abi"]) == (transport, "aarch64" if transport == "ssh" else "arm64-v8a")
    assert target["emulated"] == "qemu-aarch64 (binfmt_misc)", target
    assert target["tool"]["name"] == "bench-device-timer" and target["tool"]["argv"][0] == "/opt/bench/bin/python3"
    gate = record["accuracy"]  # the gate's batches run on the aarch64 runtime, judged against x86 eager fp32
    assert gate["images"] >= 4 and gate["agreement"] == 100.0 and gate["max_abs_diff"] < 1e-3, gate
    return record


def test_ssh_board_runs_the_aarch64_runtimes_and_the_gate(lab, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = bench(*TINY, "--runtime", "litert,onnxruntime", "--device", lab["SSH_TARGET"], "--ssh-config",
                 lab["SSH_CONFIG"], "--device-tool", "script", "--device-python", lab["DEVICE_PYTHON"], "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    litert = check_record(out, "litert", "ssh")
    assert litert["runtime_version"].startswith("ai_edge_litert 2.3.0")
    assert check_record(out, "onnxruntime", "ssh")["runtime_version"].startswith("onnxruntime ")
    shown = subprocess.run([sys.executable, "-m", "benchmark.cli", "leaderboard", "--records", str(tmp_path / "records"),
                            "--out", str(tmp_path / "board"), "--add", *map(str, out.glob("*.json"))],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert shown.returncode == 2 and "emulated target (qemu-aarch64 (binfmt_misc))" in shown.stderr, shown.stderr


def test_adb_device_runs_the_aarch64_runtime_and_the_gate(lab, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = bench(*TINY, "--runtime", "litert", "--device", lab["ADB_TARGET"], "--device-tool", "script",
                 "--device-python", lab["DEVICE_PYTHON"], "--output", str(out), netns=lab["ADB_NETNS"])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert check_record(out, "litert", "adb")["runtime_version"].startswith("ai_edge_litert 2.3.0")


def test_an_x86_tool_is_refused_before_anything_is_pushed(lab, tmp_path: Path) -> None:
    tool = tmp_path / "benchmark_model"
    shutil.copy("/bin/true", tool)  # an x86-64 ELF
    before = sorted((LAB_DIR / "rootfs" / "tmp").iterdir())
    done = bench(*TINY, "--runtime", "litert", "--device", lab["SSH_TARGET"], "--ssh-config", lab["SSH_CONFIG"],
                 "--device-tool", str(tool))  # fmt: skip
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert line == (f"bench latency: error: --device-tool {tool}: built for x86_64 64-bit, but {lab['SSH_TARGET']} is "
                    "aarch64; use a benchmark_model built for aarch64")  # fmt: skip
    assert sorted((LAB_DIR / "rootfs" / "tmp").iterdir()) == before  # no work folder was made on the device
