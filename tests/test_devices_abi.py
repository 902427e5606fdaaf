"""Bad input on a device, below the CLI: the ELF header against the device's ABI, the shells'
exec-format refusals, the ssh push's ENOSPC as one line, and a Ctrl-C held off during clean-up."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from backbones.errors import UserError
from benchmark.devices.abi import check_tool_abi, device_machines, elf_machine, exec_format_refused
from benchmark.devices.transports import NoSpaceLeft, SshTransport, human_bytes
from benchmark.devices.work_folder import sigint_deferred


def elf(path: Path, machine: int, bits: int = 2, little: bool = True) -> Path:
    order = "little" if little else "big"
    ident = b"\x7fELF" + bytes([bits, 1 if little else 2, 1]) + bytes(9)
    path.write_bytes(ident + (2).to_bytes(2, order) + machine.to_bytes(2, order) + bytes(44))
    return path


def test_elf_machine_reads_the_header(tmp_path):
    assert elf_machine(elf(tmp_path / "a", 183)) == "aarch64 64-bit"
    assert elf_machine(elf(tmp_path / "b", 40, bits=1)) == "arm 32-bit"
    assert elf_machine(elf(tmp_path / "c", 62)) == "x86_64 64-bit"
    assert elf_machine(elf(tmp_path / "d", 8, bits=1, little=False)) == "mips 32-bit"
    (tmp_path / "script").write_text("#!/bin/sh\necho hi\n")
    assert elf_machine(tmp_path / "script") is None
    (tmp_path / "short").write_bytes(b"\x7fELF")
    assert elf_machine(tmp_path / "short") is None


@pytest.mark.parametrize(
    "facts, machines",
    [
        ({"abi": "arm64-v8a", "abilist": ["arm64-v8a", "armeabi-v7a", "armeabi"]}, {"aarch64", "arm"}),
        ({"abi": "arm64-v8a", "abilist": ["arm64-v8a"]}, {"aarch64"}),  # a 64-bit-only phone (Pixel 7 and later)
        ({"abi": "x86_64", "abilist": ["x86_64", "x86", "arm64-v8a"]}, {"x86_64", "x86", "aarch64"}),  # native bridge
        ({"abi": "aarch64", "abilist": None}, {"aarch64", "arm"}),  # uname -m over ssh
        ({"abi": "armv7l", "abilist": None}, {"arm"}),
        ({"abi": "x86_64", "abilist": None}, {"x86_64", "x86"}),
        ({"abi": None, "abilist": None}, set()),
        ({"abi": "sparc64", "abilist": None}, set()),
    ],
)
def test_device_machines(facts, machines):
    assert device_machines(facts) == machines


def test_check_tool_abi(tmp_path):
    arm64 = elf(tmp_path / "benchmark_model", 183)
    check_tool_abi(arm64, {"abi": "arm64-v8a", "abilist": ["arm64-v8a"]}, "adb:X")
    check_tool_abi(arm64, {"abi": None, "abilist": None}, "adb:X")  # unknown CPU: the run itself will say
    (tmp_path / "script").write_text("#!/bin/sh\n")
    check_tool_abi(tmp_path / "script", {"abi": "x86_64", "abilist": None}, "adb:X")  # not ELF: not judged here
    with pytest.raises(UserError, match=r"built for aarch64 64-bit, but ssh://pi@board is x86_64; use a benchmark_model "
                                        r"built for x86_64$"):  # fmt: skip
        check_tool_abi(arm64, {"abi": "x86_64", "abilist": None}, "ssh://pi@board")
    with pytest.raises(UserError, match="built for x86_64 64-bit, but adb:X is arm64-v8a"):
        check_tool_abi(elf(tmp_path / "x86", 62), {"abi": "arm64-v8a", "abilist": ["arm64-v8a", "armeabi-v7a"]}, "adb:X")


@pytest.mark.parametrize(
    "log, refused",
    [
        ("sh: 1: /tmp/bench-x/benchmark_model: Exec format error\n", True),  # dash
        ("bash: ./benchmark_model: cannot execute binary file: Exec format error\n", True),  # bash
        ("/system/bin/sh: /data/local/tmp/bench-x/benchmark_model: not executable: 64-bit ELF file\n", True),  # mksh
        ("/system/bin/sh: ./benchmark_model: not executable: 32-bit ELF file\n", True),
        ("/system/bin/sh: ./benchmark_model: can't execute: Permission denied\n", False),  # noexec, not the CPU
        ("ERROR: Node number 57 (BATCH_MATMUL) failed to prepare.\n", False),
    ],
)
def test_exec_format_refusals_of_the_shells(log, refused):
    assert exec_format_refused(log) is refused


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 999, 2048, 5 * 2**20 + 2**19, 3 * 2**30)] == [
        "0 bytes", "999 bytes", "2.0 KiB", "5.5 MiB", "3.0 GiB"]  # fmt: skip


def test_ssh_push_to_a_full_board_is_one_line_naming_folder_and_size(tmp_path, monkeypatch):
    # A fake ssh with the words `cat > FILE` gets from the board's shell when its disk is full.
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\ncat > /dev/null\necho 'sh: 1: cannot create /tmp/bench-Ab12/m.tflite: "
                    "No space left on device' >&2\nexit 1\n")  # fmt: skip
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    model = tmp_path / "m.tflite"
    model.write_bytes(bytes(3 * 2**20))
    transport = SshTransport("ssh://pi@board")
    with pytest.raises(NoSpaceLeft) as error:
        transport.push(model, "/tmp/bench-Ab12/m.tflite")
    assert str(error.value) == "--device ssh://pi@board: no space left on the device in /tmp/bench-Ab12: m.tflite needs 3.0 MiB"


def test_ctrl_c_during_clean_up_waits_until_it_is_done():
    finished = []
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C while the folder is being removed
            finished.append(True)
    assert finished == [True] and signal.getsignal(signal.SIGINT) is handler
    with sigint_deferred():  # no Ctrl-C: nothing raised
        finished.append(True)
