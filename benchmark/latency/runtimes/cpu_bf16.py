"""Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), so bf16 runtimes time real bf16.

Without those units oneDNN and OpenVINO emulate bf16 (or silently keep f32), which would time
something no deployment runs; the bf16 runtimes then refuse with this module's one-line reason.
"""

from __future__ import annotations

from pathlib import Path

# /proc/cpuinfo flags of the x86 units that execute bf16 arithmetic.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The ``flags`` of the first processor in /proc/cpuinfo text (x86 Linux)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def bf16_unavailable_reason(cpuinfo: str | None = None) -> str | None:
    """None when the CPU has native bf16; else why not, in one line."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError as error:
            return f"cannot read the CPU's flags from {CPUINFO} ({error.strerror}), so native bf16 is unknown"
    flags = cpu_flags(cpuinfo)
    if not flags:
        return f"no 'flags' line in {CPUINFO}, so native bf16 is unknown"
    if flags & set(BF16_FLAGS):
        return None
    return (f"this CPU has no native bf16 ({' / '.join(BF16_FLAGS)} absent from {CPUINFO} flags); "
            "bf16 would run emulated, so it is not timed")
