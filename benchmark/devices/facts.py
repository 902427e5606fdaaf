"""What the target is and its state: identity (getprop, device-tree model, uname), CPUs, max
frequencies and governors, thermal zones; the big-core mask; the cool-down wait."""

from __future__ import annotations

import time
from typing import Any

from benchmark.devices.transports import Transport

# One POSIX sh script (Android's toybox sh included): "key value" lines, nothing that needs root.
FACTS_SCRIPT = r"""
cpu=/sys/devices/system/cpu
for d in $cpu/cpu[0-9]*; do
  n=${d##*/cpu}
  [ -r $d/cpufreq/cpuinfo_max_freq ] && echo "maxfreq $n $(cat $d/cpufreq/cpuinfo_max_freq)"
  [ -r $d/cpufreq/scaling_governor ] && echo "governor $n $(cat $d/cpufreq/scaling_governor)"
done
echo "nproc $(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null)"
echo "uname $(uname -srm)"
echo "machine $(uname -m)"
# A foreign CPU run through qemu-user: its timings are the emulator's, not the CPU's.
m=$(uname -m)
if grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-$m; then echo "emulated qemu-$m (binfmt_misc)"
elif [ "$m" != x86_64 ] && grep -qsE '^vendor_id[[:space:]]*: (GenuineIntel|AuthenticAMD)' /proc/cpuinfo; then
  echo "emulated $m on an x86 CPU (/proc/cpuinfo)"
fi
[ -r /proc/device-tree/model ] && echo "dtmodel $(tr -d '\000' < /proc/device-tree/model)"
grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: */cpumodel /'
if command -v getprop >/dev/null 2>&1; then
  for p in ro.product.model ro.product.manufacturer ro.soc.model ro.soc.manufacturer ro.board.platform \
           ro.product.cpu.abi ro.product.cpu.abilist ro.build.version.release ro.build.version.sdk; do
    echo "prop $p $(getprop $p)"
  done
fi
"""

THERMAL_SCRIPT = r"""
for z in /sys/class/thermal/thermal_zone*; do
  [ -r $z/temp ] && echo "$(cat $z/temp) $(cat $z/type 2>/dev/null)"
done
"""


def parse_facts(text: str) -> dict[str, Any]:
    maxfreq: dict[int, int] = {}
    governors: dict[int, str] = {}
    props: dict[str, str] = {}
    plain: dict[str, str] = {}
    for line in text.replace("\r", "").splitlines():
        key, _, rest = line.partition(" ")
        if key == "maxfreq" and len(rest.split()) == 2 and rest.split()[1].isdigit():
            maxfreq[int(rest.split()[0])] = int(rest.split()[1])
        elif key == "governor" and len(rest.split()) == 2:
            governors[int(rest.split()[0])] = rest.split()[1]
        elif key == "prop":
            name, _, value = rest.partition(" ")
            if value.strip():
                props[name] = value.strip()
        elif key and rest.strip():
            plain[key] = rest.strip()
    cpus = int(plain["nproc"]) if plain.get("nproc", "").isdigit() else (len(maxfreq) or None)
    android = bool(props)
    model = props.get("ro.product.model") or plain.get("dtmodel") or plain.get("cpumodel")
    os_name = (f"Android {props['ro.build.version.release']} (SDK {props.get('ro.build.version.sdk', '?')})"
               if "ro.build.version.release" in props else plain.get("uname"))  # fmt: skip
    return {
        "model": model,
        "manufacturer": props.get("ro.product.manufacturer") or props.get("ro.soc.manufacturer"),
        "soc": props.get("ro.soc.model") or props.get("ro.board.platform"),
        "abi": props.get("ro.product.cpu.abi") or plain.get("machine"),
        # Every ABI Android runs (arm64-v8a,armeabi-v7a,...; native-bridge ones included): the tool check's.
        "abilist": [abi for abi in props.get("ro.product.cpu.abilist", "").split(",") if abi] or None,
        "os": os_name,
        "kernel": plain.get("uname"),
        "android": android,
        "cpus": cpus,
        "max_freqs_khz": [maxfreq[k] for k in sorted(maxfreq)] or None,
        "governors": [governors[k] for k in sorted(governors)] or None,
        "cpu_ids": sorted(maxfreq),
        # "qemu-aarch64 (binfmt_misc)" on an emulated userland: its rows never reach the leaderboards.
        "emulated": plain.get("emulated"),
    }


def big_core_mask(max_freqs: dict[int, int] | list[int] | None) -> str | None:
    """Hex taskset mask of the cores sharing the highest max frequency (None without cpufreq)."""
    if not max_freqs:
        return None
    items = max_freqs.items() if isinstance(max_freqs, dict) else enumerate(max_freqs)
    pairs = list(items)
    top = max(f for _, f in pairs)
    mask = sum(1 << cpu for cpu, f in pairs if f == top)
    return format(mask, "x")


def read_facts(transport: Transport) -> dict[str, Any]:
    return parse_facts(transport.script(FACTS_SCRIPT))


def parse_thermal(text: str) -> float | None:
    """Hottest zone in degrees C (zones report millidegrees; a few report degrees)."""
    temps = []
    for line in text.replace("\r", "").splitlines():
        value = line.split(" ", 1)[0]
        try:
            number = float(value)
        except ValueError:
            continue
        temps.append(number / 1000.0 if abs(number) >= 200 else number)
    return max(temps) if temps else None


def temperature(transport: Transport) -> float | None:
    return parse_thermal(transport.script(THERMAL_SCRIPT))


def cool_down(transport: Transport, below_c: float | None, max_s: float, poll_s: float = 5.0) -> tuple[float | None, float]:
    """Wait until the hottest zone is at or below ``below_c`` (at most ``max_s``); (temp, waited s)."""
    start = time.monotonic()
    temp = temperature(transport)
    if below_c is None:
        return temp, 0.0
    while temp is not None and temp > below_c and time.monotonic() - start < max_s:
        time.sleep(min(poll_s, max(0.0, max_s - (time.monotonic() - start))))
        temp = temperature(transport)
    return temp, round(time.monotonic() - start, 1)
