"""What a CPU can do for inference, read from the hardware: vendor, model, the instruction-set
extensions that change which kernels run (AVX2 / AVX-512 / VNNI / BF16 / AMX on x86; dotprod,
i8mm, bf16, SVE on Arm), cores and maximum frequency; and the short label that tells two hosts apart.

Two CPUs may share a model name ("AMD EPYC" with and without AVX-512), and their timings differ by
2x and more: the label carries the instruction-set class, so a leaderboard never puts them on one
axis. The same parser reads this machine's ``/proc/cpuinfo`` and a device's (``bench latency --device``).
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# /proc/cpuinfo flag -> the name the label and the record use, in the order a label lists them.
X86_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512bw": "AVX-512BW",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
}
ARM_FLAGS = {
    "asimd": "NEON",
    "asimddp": "dotprod",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "SVE",
    "sve2": "SVE2",
}


@dataclass(frozen=True)
class HostFacts:
    """One CPU's identity; ``label`` is the key leaderboards group timings by."""

    arch: str
    vendor: str
    model: str
    flags: tuple[str, ...]
    cores: int
    max_mhz: float | None

    @property
    def isa(self) -> str:
        """The instruction-set class that decides the inference kernels (e.g. ``AVX-512 VNNI BF16``)."""
        has = set(self.flags)
        if self.arch in ("x86_64", "amd64", "i686"):
            if "AMX" in has:
                return "AMX"
            if "AVX-512F" in has:
                extra = [name for name in ("VNNI", "BF16") if f"AVX-512 {name}" in has]
                return " ".join(["AVX-512", *extra])
            if "AVX2" in has:
                return "AVX2 VNNI" if "AVX-VNNI" in has else "AVX2"
            return "SSE"
        if self.arch in ("aarch64", "arm64"):
            extra = [name for name in ("dotprod", "i8mm", "bf16", "SVE") if name in has]
            return " ".join(["Armv8", *extra])
        return self.arch or "unknown ISA"

    @property
    def int8_dot_product(self) -> bool:
        """Whether int8 products accumulate in 32 bits in one instruction (x86 VNNI or AMX, Arm
        dotprod). Without it, x86 kernels multiply u8 x s8 pairs into saturating 16-bit sums
        (vpmaddubsw), and quantizers must keep weights within 7 bits to stay exact."""
        return bool({"AVX-512 VNNI", "AVX-VNNI", "AMX-INT8", "dotprod"} & set(self.flags))

    @property
    def label(self) -> str:
        return f"{self.model}, {self.isa}, {self.cores} cores"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "flags": list(self.flags), "isa": self.isa, "label": self.label}


def parse_cpuinfo(text: str, arch: str, cores: int, max_mhz: float | None = None) -> HostFacts:
    """The facts in a ``/proc/cpuinfo`` text (x86 or Arm) of a machine with ``cores`` usable cores."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    table = ARM_FLAGS if arch in ("aarch64", "arm64") else X86_FLAGS
    flags = tuple(name for flag, name in table.items() if flag in present)
    vendor = fields.get("vendor_id") or _arm_vendor(fields.get("CPU implementer", ""))
    model = fields.get("model name") or fields.get("Hardware") or fields.get("Processor") or arch
    if max_mhz is None and fields.get("cpu MHz"):
        max_mhz = float(fields["cpu MHz"])
    return HostFacts(arch=arch, vendor=vendor, model=model, flags=flags, cores=cores,
                     max_mhz=round(max_mhz, 1) if max_mhz else None)


def _arm_vendor(implementer: str) -> str:
    known = {"0x41": "Arm", "0x51": "Qualcomm", "0x61": "Apple", "0x48": "HiSilicon", "0x53": "Samsung",
             "0x4e": "NVIDIA", "0xc0": "Ampere"}
    return known.get(implementer.lower(), implementer or "unknown")


def this_host() -> HostFacts:
    """This machine: /proc/cpuinfo, the cores this process may use, cpufreq's maximum where readable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    max_mhz = None
    try:
        max_mhz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000
    except (OSError, ValueError):
        pass
    facts = parse_cpuinfo(text, platform.machine(), cores, max_mhz)
    if not text:
        facts = HostFacts(platform.machine(), "unknown", platform.processor() or platform.machine(), (), cores, None)
    return facts


NO_ISA = "ISA not recorded"


def host_label(environment: dict[str, Any]) -> str:
    """A record's host: its recorded label; a GPU by name; else, for records made before the
    instruction set was recorded, the CPU name and cores marked "ISA not recorded"."""
    host = environment.get("host")
    if isinstance(host, dict) and host.get("label"):
        return str(host["label"])
    device = str(environment.get("device") or "cpu")
    if device.startswith("cuda") and environment.get("gpu"):
        return str(environment["gpu"])
    cores = environment.get("cpu_count")
    name = str(environment.get("cpu") or device) + (f", {cores} cores" if cores else "")
    return f"{name} ({NO_ISA})"
