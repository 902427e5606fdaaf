"""``bench latency --device ssh://...`` against a REAL OpenSSH sshd started on 127.0.0.1 by the test.

Throwaway host and user keys in tmp, its own sshd_config (no PAM, its own AuthorizedKeysFile and
PidFile), stopped by its pid; the client reads a tmp config file (--ssh-config), so ~/.ssh is never
touched. Skipped, with the reason, only where no sshd is installed (.ci/run installs openssh-server).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import completed
from requirements_helpers import require

SSHD = "/usr/sbin/sshd"
NO_SSHD = pytest.mark.requires(  # skips, or fails under BENCH_REQUIRE (tests/requirements_helpers.py)
    "sshd", None if (os.access(SSHD, os.X_OK) and shutil.which("ssh") and shutil.which("ssh-keygen")) else
    "no OpenSSH server here (/usr/sbin/sshd, ssh, ssh-keygen); .ci/run installs openssh-server",
)
MODEL = ["--task", "classification", "--backbone", "mnv1", "--width", "0.25", "--resolution", "128"]
QUICK = ["--tier", "quick", "--warmup-runs", "2", "--warmup-seconds", "0.1", "--min-runs", "10", "--min-seconds", "0.3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def client_config(folder: Path, name: str, port: int, identity: Path, known_hosts: Path) -> Path:
    config = folder / name
    config.write_text(
        f"Host 127.0.0.1\n  Port {port}\n  IdentityFile {identity}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
        f"  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    return config


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sshd")
    host_pub = keygen(folder / "host_key")
    user_pub = keygen(folder / "user_key")
    keygen(folder / "other_key")
    (folder / "authorized_keys").write_text(user_pub + "\n")
    os.chmod(folder / "authorized_keys", 0o600)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder / 'host_key'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
        f"UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nPidFile {folder / 'sshd.pid'}\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True) if os.geteuid() == 0 else None  # privilege separation dir
    process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(folder / "sshd.log")])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            require("sshd", f"sshd would not start here: {(folder / 'sshd.log').read_text()[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    known = folder / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    (folder / "empty_known_hosts").write_text("")
    yield {
        "port": port, "user": getpass.getuser(), "folder": folder,
        "config": client_config(folder, "ssh_config", port, folder / "user_key", known),
        "unknown_host": client_config(folder, "ssh_config_unknown", port, folder / "user_key", folder / "empty_known_hosts"),
        "wrong_key": client_config(folder, "ssh_config_wrong", port, folder / "other_key", known),
    }  # fmt: skip
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture
def latency(capsys):
    """``bench latency`` in this process (the target side is the real sshd's own processes)."""
    return lambda *args: completed(["latency", *args], capsys)


@NO_SSHD
def test_ssh_end_to_end_with_the_suites_timer(sshd, tmp_path, latency):
    device_root = tmp_path / "device-root"
    device_root.mkdir()
    target = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}"
    done = latency(*MODEL, *QUICK, "--runtime", "onnxruntime,litert", "--device", target, "--ssh-config", str(sshd["config"]),
                 "--device-python", sys.executable, "--device-root", str(device_root), "--output", str(tmp_path / "out"),
                 "--data", "synthetic", "--accuracy-images", "16")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = sorted((tmp_path / "out").glob("*.json"))
    assert len(records) == 2
    for path in records:
        record = json.loads(path.read_text())
        target_block = record["target"]
        assert target_block["transport"] == "ssh" and target_block["address"] == target
        assert target_block["tool"]["name"] == "bench-device-timer"
        assert target_block["cpus"] == os.cpu_count()
        assert len(target_block["file"]["sha256"]) == 64
        assert record["runs"] >= 10 and 0 < record["min_ms"] <= record["p50_ms"] <= record["max_ms"]
        assert record["runtime_version"].split()[0] == {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert"}[record["runtime"]]
        # --data: the gate's 16 images ran through the file on the target, judged against eager here.
        gate = record["accuracy"]
        assert gate["images"] == 16 and gate["agreement"] == 100.0 and gate["max_abs_diff"] < 1e-3, gate
        assert "synthetic validation split" in record["input"]
        log = path.with_suffix(".log").read_text()
        assert json.loads(log.strip().splitlines()[-1])["runs_us"]  # the raw device log beside the record
    assert list(device_root.iterdir()) == []  # the work folder was removed


@NO_SSHD
@pytest.mark.parametrize(
    "config, expected",
    [("unknown_host", "ssh-keyscan -p {port} 127.0.0.1 >> ~/.ssh/known_hosts"), ("wrong_key", "key refused")],
)
def test_unknown_host_key_and_refused_key_are_one_line_exit_2(sshd, tmp_path, config, expected, latency):
    done = latency(*MODEL, "--runtime", "onnxruntime", "--device", f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}",
                 "--ssh-config", str(sshd[config]), "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2, done.stderr[-1000:]
    assert expected.format(port=sshd["port"]) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@NO_SSHD
def test_ssh_with_the_litert_wheels_own_benchmark(sshd, tmp_path, latency):
    device_root = tmp_path / "device-root"
    device_root.mkdir()
    target = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}"
    done = latency(*MODEL, *QUICK, "--runtime", "litert", "--device", target, "--ssh-config", str(sshd["config"]),
                 "--device-tool", "litert-benchmark", "--device-python", sys.executable, "--device-root", str(device_root),
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = (tmp_path / "out").glob("*.json")
    record = json.loads(path.read_text())
    tool = record["target"]["tool"]
    assert tool["name"] == "litert-benchmark" and tool["argv"][:3] == [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model"]
    assert record["p90_ms"] is None and 0 < record["min_ms"] <= record["p50_ms"] <= record["max_ms"]
    # The tool runs exactly --num_runs: the tier's 10, or a longer run sized to fill its 0.3 s.
    assert record["runs"] >= 10 and record["runs"] * record["mean_ms"] >= 0.3 * 1000, (record["runs"], record["mean_ms"])
    assert tool["argv"][-1] == f"--num_runs={record['runs']}"
    assert record["runtime_version"].startswith("ai_edge_litert ")
    assert "sized from the previous one's fastest inference" in record["methodology"]["notes"]["runs"]
    assert "BENCHMARK RESULTS" in path.with_suffix(".log").read_text()
    assert list(device_root.iterdir()) == []


@NO_SSHD
def test_tool_for_another_cpu_is_refused_by_uname_before_anything_is_pushed(sshd, tmp_path, latency):
    device_root = tmp_path / "device-root"
    device_root.mkdir()
    machine = os.uname().machine
    other = 62 if machine == "aarch64" else 183  # an x86_64 build on an arm board, else an aarch64 one
    tool = tmp_path / "benchmark_model"
    tool.write_bytes(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + (2).to_bytes(2, "little") + other.to_bytes(2, "little")
                     + bytes(44))  # fmt: skip
    target = f"ssh://{sshd['user']}@127.0.0.1:{sshd['port']}"
    done = latency(*MODEL, "--runtime", "litert", "--device", target, "--ssh-config", str(sshd["config"]),
                 "--device-tool", str(tool), "--device-root", str(device_root), "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2, done.stderr[-1000:]
    expected = f"--device-tool {tool}: built for {'x86_64' if other == 62 else 'aarch64'} 64-bit, but {target} is {machine}"
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("bench")]
    assert expected in error, done.stderr[-1000:]
    assert "classification mnv1" not in done.stderr  # refused before the model was built
    assert list(device_root.iterdir()) == [] and not (tmp_path / "out").exists()


@NO_SSHD
def test_closed_port_is_one_line_exit_2(tmp_path, latency):
    done = latency(*MODEL, "--runtime", "onnxruntime", "--device", f"ssh://nobody@127.0.0.1:{free_port()}",
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2 and "Connection refused" in done.stderr, done.stderr[-1000:]
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.device
@pytest.mark.skipif(not os.environ.get("BENCH_SSH_TARGET"), reason="set BENCH_SSH_TARGET=ssh://user@host to time on a real board")
def test_real_board(tmp_path, latency):
    done = latency(*MODEL, *QUICK, "--runtime", "litert", "--device", os.environ["BENCH_SSH_TARGET"],
                 "--output", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = (tmp_path / "out").glob("*.json")
    assert json.loads(path.read_text())["target"]["transport"] == "ssh"
