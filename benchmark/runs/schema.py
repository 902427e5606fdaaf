"""The records the suite writes, one frozen dataclass per kind, and the one check every record file
passes: the store reads a file against the same class that wrote it, so the writers and the
leaderboard cannot drift apart. Torch-free: the leaderboard and ``--check`` load it.

Kinds: ``result`` (``bench run``), ``evaluation`` (``bench eval``), ``latency`` (``bench latency``,
local or on a device) and ``profile`` (the params and MAdds the suite counted for a reported network).
A measured record's ``environment`` holds the commit it was made from and the ``bench`` command line
that made it (``environment.command``).
"""

from __future__ import annotations

import functools
import random
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar, Self

from backbones.errors import UserError

SCHEMA_VERSION = 1


def now() -> str:
    """A record's ``created`` stamp: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Record:
    """What every record kind shares: its file form (``to_json``) and the check of a file (``check``)."""

    KIND: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": self.KIND, **asdict(self)}

    @classmethod
    def file_fields(cls) -> dict[str, tuple[Any, bool]]:
        """Each top-level key of the file: (its type, whether it must be there)."""
        return _typed_fields(cls)

    @classmethod
    def check(cls, data: Mapping[str, Any], path: object) -> None:
        """Every key of the file is one of the class's fields, of its type; the required ones are there."""
        expected = cls.file_fields()
        unknown = sorted(set(data) - set(expected) - {"schema_version", "kind"})
        if unknown:
            raise UserError(f"{path}: {cls.KIND} record has unknown field(s) {', '.join(map(repr, unknown))}")
        for key, (hint, required) in expected.items():
            if key not in data:
                if required:
                    raise UserError(f"{path}: {cls.KIND} record field {key!r} must be {_type_name(hint)}, got missing")
                continue
            if not _matches(data[key], hint):
                got = f"{type(data[key]).__name__} {data[key]!r}"[:60]
                raise UserError(f"{path}: {cls.KIND} record field {key!r} must be {_type_name(hint)}, got {got}")


@functools.cache
def _typed_fields(cls: type) -> dict[str, tuple[Any, bool]]:
    """A dataclass's fields: (type, required: no default). Cached: resolving the annotations is most of
    the time a store takes to load, and the answer is the class's (callers must not change it)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.default is MISSING and f.default_factory is MISSING) for f in fields(cls)}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits an annotation: unions, containers by their outer type, a nested
    dataclass as an object; ``bool`` is not a number, an ``int`` is a ``float``."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is not None:
        return _matches(value, origin)
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return isinstance(value, dict)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    hint = typing.get_origin(hint) or hint
    if hint is type(None):
        return "null"
    if hasattr(hint, "__dataclass_fields__"):
        return "dict"
    return getattr(hint, "__name__", str(hint))


@dataclass(frozen=True)
class ModelRecord(Record):
    """The network a record is about: task, backbone, width (None: a backbone without a multiplier),
    input side and class count."""

    task: str
    backbone: str
    width: float | None
    resolution: int
    num_classes: int

    @classmethod
    def of_model(cls, task: str, cfg: Mapping[str, Any], **measured: Any) -> Self:
        """A record of ``cfg``'s network and what was measured on it: the one builder of the five fields
        for every writer (``bench run``, ``bench eval``, the local and the device latency runners)."""
        return cls(task=task, backbone=cfg["backbone"], width=_width(cfg), resolution=int(cfg["resolution"]),
                   num_classes=int(cfg["num_classes"]), **measured)  # fmt: skip


def _width(cfg: Mapping[str, Any]) -> float | None:
    """The width the network was built at: the config's, 1.0 when a backbone with a multiplier was
    left at its default, None for a backbone without one (torchvision's MobileNetV3, timm's)."""
    from backbones.registry import UnknownBackboneError, get_entry  # the writers have built the model already

    if cfg.get("width") is not None:
        return float(cfg["width"])
    try:
        return 1.0 if "width" in get_entry(cfg["backbone"]).options else None
    except UnknownBackboneError:
        return None


# --------------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResultRecord(ModelRecord):
    """``bench run``'s ``result.json``: what was trained on what, its metrics, counts and environment."""

    KIND: ClassVar[str] = "result"
    dataset: dict[str, Any]
    metrics: dict[str, Any]
    params: int
    madds: int
    profile: dict[str, Any]
    config: dict[str, Any]
    steps: int
    resumed_from_step: int | None
    epochs: int
    wall_time_s: float
    environment: dict[str, Any]
    created: str = field(default_factory=now)


@dataclass(frozen=True)
class EvaluationRecord(ModelRecord):
    """``bench eval``'s record: metrics in percent with 95 % bootstrap intervals, the data, the settings
    the numbers depend on, the weights' provenance and how they were run."""

    KIND: ClassVar[str] = "evaluation"
    split: str
    preset: str
    dataset: dict[str, Any]
    settings: dict[str, Any]
    metrics: dict[str, Any]
    images: int
    ci95: dict[str, Any]
    ci_method: str
    weights: dict[str, Any]
    runtime: str
    precision: str
    wall_time_s: float
    environment: dict[str, Any]
    # An integer execution's agreement with LiteRT on the same bytes (None: not checked).
    litert_agreement: dict[str, Any] | None = None
    created: str = field(default_factory=now)


@dataclass(frozen=True)
class ProfileRecord(ModelRecord):
    """Params and MAdds the suite counted for a network a reported baseline names (a cache the
    leaderboard reads, so it stays a fast, pure function of the files; ``--recount`` remakes it)."""

    KIND: ClassVar[str] = "profile"
    key: str
    options: list[str]
    params: int
    madds: int
    profile: dict[str, Any]
    counted_with: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyStats:
    """A timing's statistics in ms. A device tool that prints no first run, p99 or maximum leaves them None."""

    runs: int
    duration_s: float
    first_ms: float | None
    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class GateResult:
    """A runtime's accuracy against eager fp32 on the task's validation data, and its verdict."""

    metric: str | None = None
    value: float | None = None
    reference: float | None = None
    ratio: float | None = None
    threshold: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    images: int | None = None
    # True unless the runtime passed (a failed target, or no judgement): a flagged row never passes.
    flagged: bool | None = None
    basis: str | None = None
    note: str | None = None
    verdict: str | None = None
    agreement_target: float | None = None
    # Why the runtime failed or was not judged (the targets it missed, the weak reference).
    reason: str | None = None


@dataclass(frozen=True)
class LatencyRecord(ModelRecord):
    """One timing with its context. In the file the statistics sit at the top level (``p50_ms``...)."""

    KIND: ClassVar[str] = "latency"
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
    # cpus, max_freqs_khz, governors, temperatures, tool, delegate, cpu_mask, file. None: this host.
    target: dict[str, Any] | None = None
    # A device run's raw tool log, kept beside the record under this name.
    raw_log: str | None = None
    created: str = field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        stats = data.pop("stats")
        return {**data, **stats}

    @classmethod
    def file_fields(cls) -> dict[str, tuple[Any, bool]]:
        flat = {key: value for key, value in super().file_fields().items() if key != "stats"}
        return {**flat, **_typed_fields(LatencyStats)}

    def file_name(self) -> str:
        """The record's name in a run's output folder: task, backbone, runtime, time and a random tag."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        backbone = self.backbone.replace(":", "-")  # timm:NAME: no colon in a file name
        return f"{self.task}-{backbone}-{self.runtime}-{stamp}-{random.randbytes(3).hex()}.json"


RECORD_TYPES: dict[str, type[Record]] = {
    cls.KIND: cls for cls in (ResultRecord, EvaluationRecord, LatencyRecord, ProfileRecord)
}
KINDS = tuple(RECORD_TYPES)
