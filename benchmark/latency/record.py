"""The frozen latency record (kind ``latency``) and its file name."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from benchmark.latency.gate import GateResult
from benchmark.latency.timing import LatencyStats
from benchmark.runs.records import SCHEMA_VERSION


# --------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyRecord:
    """One measurement with its context; ``to_json`` gives the file's schema (kind ``latency``)."""

    task: str
    backbone: str
    width: float | None
    resolution: int
    num_classes: int
    runtime: str
    runtime_version: str
    device: str
    threads: int
    batch_size: int
    precision: str
    layout: str
    tier: str
    methodology: dict[str, Any]
    input: str
    init_ms: float
    stats: LatencyStats
    postprocess: dict[str, Any] | None
    accuracy: GateResult | None
    peak_memory_mb: float | None
    memory: dict[str, Any]
    details: dict[str, Any]
    environment: dict[str, Any]
    # What was timed: {"source": "tflite" | "checkpoint" | "torchvision" | "random init", "file", "sha256"}.
    weights: dict[str, Any] | None = None
    # Timed on another machine (``bench latency --device``): transport, address, model, soc, abi, os,
    # cpus, max_freqs_khz, governors, temperatures, tool, delegate, cpu_mask, file_sha256. None: this host.
    target: dict[str, Any] | None = None
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def of_model(cls, task: str, cfg: Mapping[str, Any], **measured: Any) -> LatencyRecord:
        """A record of ``cfg``'s network (backbone, width, input size, classes) and what was measured on
        it: the one builder the local runner and the device runner share."""
        return cls(task=task, backbone=cfg["backbone"], width=cfg.get("width"), resolution=int(cfg["resolution"]),
                   num_classes=int(cfg["num_classes"]), **measured)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        stats = data.pop("stats")
        return {"schema_version": SCHEMA_VERSION, "kind": "latency", **data, **stats}



def record_file_name(record: LatencyRecord) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    backbone = record.backbone.replace(":", "-")  # timm:NAME: no colon in a file name
    return f"{record.task}-{backbone}-{record.runtime}-{stamp}-{random.randbytes(3).hex()}.json"
