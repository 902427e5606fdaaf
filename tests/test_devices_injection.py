"""No option injection through ``--device``: a user, host or adb serial that ssh or adb would read
as an option (``-oProxyCommand=CMD`` runs CMD on this machine) is refused in one line, exit 2,
before any ssh or adb runs; every ssh call ends its options with ``--`` before the destination."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backbones.errors import UserError
from benchmark.devices import transports
from benchmark.devices.transports import SshTransport, parse_target

REPO = Path(__file__).resolve().parents[1]
MODEL = ["--task", "classification", "--backbone", "mnv1", "--width", "0.25", "--resolution", "128"]


def spy_path(tmp_path: Path) -> Path:
    """ssh and adb on PATH that record being run (none may be)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("ssh", "adb", "scp"):
        tool = folder / name
        tool.write_text(f"#!/bin/sh\necho {name} \"$@\" >> {tmp_path}/ran\nexit 0\n")
        tool.chmod(0o755)
    return folder


@pytest.mark.parametrize(
    "target",
    ["ssh://-oProxyCommand=touch pwned@host", "ssh://-oProxyCommand=CMD@host", "ssh://user@-oProxyCommand=CMD",
     "ssh://us er@host", "adb:-H", "adb:ab cd", "adb:-s"],
)  # fmt: skip
def test_injection_attempt_exits_2_in_one_line_and_runs_nothing(tmp_path, target):
    marker = tmp_path / "pwned"  # what the first target's ProxyCommand would make in the working folder
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{spy_path(tmp_path)}:{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "benchmark.cli", "latency", *MODEL, "--runtime", "onnxruntime",
                           "--device", target], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "begins with '-' or holds whitespace; refused" in lines[0], done.stderr
    assert not marker.exists() and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("text", ["ssh://-oProxyCommand=x@host", "ssh://u@-p22", "ssh://u\tx@host", "adb:-H", "adb:a b"])
def test_parse_target_refuses_option_like_names(text):
    with pytest.raises(UserError, match=r"begins with '-' or holds whitespace; refused"):
        parse_target(text)


@pytest.mark.parametrize("text", ["ssh://pi@raspberrypi.local:2222", "ssh://board", "ssh://u-1@host-a", "adb:emulator-5554",
                                  "adb:127.0.0.1:40555"])  # fmt: skip
def test_ordinary_names_pass(text):
    assert parse_target(text).kind in ("ssh", "adb")


def test_every_ssh_call_puts_double_dash_before_the_destination(monkeypatch, tmp_path):
    calls = []

    def run(argv, timeout=None, **kwargs):
        calls.append(list(argv))
        empty = "" if kwargs.get("text") or not kwargs else b""
        return subprocess.CompletedProcess(argv, 0, empty, empty)

    monkeypatch.setattr(transports.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(transports, "_run", lambda argv, timeout, what: run(argv, text=True))
    monkeypatch.setattr(transports.subprocess, "run", run)
    ssh = SshTransport("ssh://pi@board:2222")
    ssh.check()
    ssh.shell(["echo", "hi"])
    (tmp_path / "f").write_bytes(b"x")
    ssh.push(tmp_path / "f", "/tmp/f")
    ssh.pull("/tmp/f", tmp_path / "g")
    assert len(calls) == 4
    for argv in calls:
        assert argv[0] == "ssh" and argv[argv.index("pi@board") - 1] == "--", argv
