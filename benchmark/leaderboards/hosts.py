"""One label per machine that timed a record, and the rule that one latency axis shows one machine.

Two CPUs sold under one name can differ in the instruction sets inference depends on (AVX2 against
AVX-512 with VNNI and BF16), so a host is named by what the record says about its hardware: the
``environment["host"]["label"]`` a record carries (vendor, model, the flags that matter, cores),
else, for records made before that block existed, the CPU name and core count with "ISA not
recorded". A record timed on a phone or board (``bench latency --device``) is labelled by its target.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from backbones.errors import UserError
from benchmark.runs.host import host_label


def target_label(record: dict[str, Any]) -> str | None:
    """A device record's target as ``Pixel 7 (adb)``; None for a record timed on its host."""
    target = record.get("target")
    if not isinstance(target, dict):
        return None
    name = target.get("model") or record.get("device") or "device"
    transport = target.get("transport")
    return f"{name} ({transport})" if transport else str(name)


def machine_label(record: dict[str, Any]) -> str:
    """Where a latency record was timed: its device target, else its host."""
    return target_label(record) or host_label(record.get("environment") or {})


def one_machine(records: Iterable[dict[str, Any]], axis: str) -> str:
    """The one machine label shared by the records drawn on ``axis``; two labels are refused, since
    timings of two machines on one axis read as a comparison of runtimes that they are not."""
    labels = sorted({machine_label(record) for record in records})
    if len(labels) > 1:
        raise UserError(f"leaderboard: {axis} would put two machines on one latency axis ({' | '.join(labels)})")
    return labels[0] if labels else ""
