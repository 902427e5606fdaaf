"""Whether a pushed device tool can run on the target: the binary's ELF machine against the
device's ABI, checked before anything is pushed, and the shell's exec-format refusal read back.

An aarch64 ``benchmark_model`` on an x86_64 emulator (or an x86_64 build on a phone) otherwise only
fails once it runs, as ``Exec format error`` (dash, bash) or ``not executable: 64-bit ELF file``
(Android's mksh), after the export and every push.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from backbones.errors import UserError

# ELF e_machine values (the System V gABI's registry) of the CPUs devices have.
ELF_MACHINES = {3: "x86", 62: "x86_64", 40: "arm", 183: "aarch64", 243: "riscv", 8: "mips"}

# Android ABI names (ro.product.cpu.abi[list]) and `uname -m` answers -> the ELF machine they run.
ABI_MACHINES = {
    "arm64-v8a": "aarch64", "aarch64": "aarch64", "arm64": "aarch64", "armv8": "aarch64",
    "armeabi-v7a": "arm", "armeabi": "arm", "armv7l": "arm", "armv8l": "arm", "armv7": "arm", "armv6l": "arm",
    "x86_64": "x86_64", "amd64": "x86_64", "x86": "x86", "i686": "x86", "i586": "x86", "i386": "x86",
    "riscv64": "riscv", "mips": "mips", "mips64": "mips",
}  # fmt: skip

# A 64-bit kernel of these runs its 32-bit sibling's binaries too (where Android says nothing more).
ALSO_RUNS = {"aarch64": {"arm"}, "x86_64": {"x86"}}

# What the target's shell prints when the kernel refuses the file (ENOEXEC).
# The kernel's refusal, a shell's, or qemu-user's where binfmt_misc hands it a foreign ELF it cannot load.
EXEC_FORMAT = re.compile(r"Exec format error|not executable: (?:32|64)-bit ELF|cannot execute binary file|"
                         r"Invalid ELF image for this architecture", re.I)


def elf_machine(path: Path) -> str | None:
    """``"aarch64 64-bit"``-style description of an ELF file's machine, or None when it is no ELF file."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    bits = {1: "32-bit", 2: "64-bit"}.get(header[4], "?-bit")
    number = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return f"{ELF_MACHINES.get(number, f'machine {number}')} {bits}"


def device_machines(facts: dict[str, Any]) -> set[str]:
    """The ELF machines the device runs: Android's ABI list when it gives one, else its one ABI
    (``ro.product.cpu.abi`` or ``uname -m``) and the 32-bit sibling; empty when unknown."""
    names = facts.get("abilist") or ([facts["abi"]] if facts.get("abi") else [])
    machines = {ABI_MACHINES[name] for name in names if name in ABI_MACHINES}
    if not facts.get("abilist"):
        machines |= {m for machine in set(machines) for m in ALSO_RUNS.get(machine, ())}
    return machines


def check_tool_abi(binary: Path, facts: dict[str, Any], address: str) -> None:
    """Refuse, in one line, a ``--device-tool`` ELF binary built for a CPU the device does not run."""
    described = elf_machine(binary)
    runs = device_machines(facts)
    if described is None or not runs or described.split()[0] in runs:
        return
    raise UserError(f"--device-tool {binary}: built for {described}, but {address} is {facts['abi']}; "
                    f"use a benchmark_model built for {facts['abi']}")  # fmt: skip


def exec_format_refused(log: str) -> bool:
    """The shell could not execute the tool at all (wrong CPU or a broken binary), per its own words."""
    return bool(EXEC_FORMAT.search(log[-2000:]))
