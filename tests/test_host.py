"""Hosts told apart by instruction set: /proc/cpuinfo of x86 and Arm CPUs, labels, old records."""

from __future__ import annotations

from benchmark.runs.host import host_label, parse_cpuinfo, this_host
from benchmark.runs.records import environment

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model name\t: AMD EPYC
cpu MHz\t\t: 2445.406
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""
EPYC_AVX512 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
cpu MHz\t\t: 2596.098
flags\t\t: fpu sse2 fma avx avx2 avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni avx_vnni
"""
SAPPHIRE_RAPIDS = """vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
# A Raspberry Pi 5 (Cortex-A76) and a Pixel-class big core: Arm lists "Features", no model name.
CORTEX_A76 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd0b
"""
CORTEX_X3 = """processor\t: 7
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp flagm2 frint i8mm bf16 bti
CPU implementer\t: 0x41
Hardware\t: Google Tensor G3
"""


def test_two_epycs_with_one_name_get_two_labels() -> None:
    avx2 = parse_cpuinfo(EPYC_AVX2, "x86_64", 2)
    avx512 = parse_cpuinfo(EPYC_AVX512, "x86_64", 2)
    assert avx2.model == avx512.model == "AMD EPYC" and avx2.vendor == "AuthenticAMD"
    assert avx2.label == "AMD EPYC, AVX2, 2 cores"
    assert avx512.label == "AMD EPYC, AVX-512 VNNI BF16, 2 cores"
    assert avx2.flags == ("AVX2", "FMA") and not avx2.int8_dot_product
    assert avx512.int8_dot_product and avx2.max_mhz == 2445.4


def test_amx_and_arm_classes() -> None:
    spr = parse_cpuinfo(SAPPHIRE_RAPIDS, "x86_64", 8, max_mhz=3800.0)
    assert spr.isa == "AMX" and spr.int8_dot_product and spr.max_mhz == 3800.0
    a76 = parse_cpuinfo(CORTEX_A76, "aarch64", 4)
    assert (a76.vendor, a76.isa, a76.int8_dot_product) == ("Arm", "Armv8 dotprod", True)
    x3 = parse_cpuinfo(CORTEX_X3, "aarch64", 8)
    assert x3.model == "Google Tensor G3" and x3.isa == "Armv8 dotprod i8mm bf16"


def test_records_carry_the_host_block_and_old_ones_say_isa_not_recorded() -> None:
    env = environment("cpu")
    host = env["host"]
    assert host == this_host().to_json() and host["label"].endswith(f"{host['cores']} cores")
    assert host_label(env) == host["label"]
    old = {"cpu": "AMD EPYC", "cpu_count": 2, "device": "cpu"}
    assert host_label(old) == "AMD EPYC, 2 cores (ISA not recorded)"
