"""The records store: one JSON file per record under ``leaderboards/records/``, each checked on load
against the class of its kind that wrote it (``benchmark.runs.schema``: result, evaluation, latency,
profile). A measured record carries the commit it was made from; one made from a tree with
uncommitted changes (commit ending in ``+dirty``) cannot be reproduced, and a latency record below its
task's minimum tier (``MIN_LATENCY_TIER``) is too short to rank, so ``--add`` refuses either and
``--check`` fails while one is in the store. File names are derived from the content, so adding the same record twice
gives one file, and two different measurements never overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from backbones.errors import UserError
from benchmark.runs.records import read_record, write_json_atomic, write_text_atomic
from benchmark.runs.schema import KINDS, RECORD_TYPES
from tasks.facts import TASK_FACTS

# The headline metric each task's result record must carry (percent).
TASK_METRICS = {name: facts.metric for name, facts in TASK_FACTS.items()}
_NUMBER = (int, float)


def validate(record: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Check a record against its kind's class in ``benchmark.runs.schema`` (the class that writes it),
    and the values the leaderboard reads inside its objects; a bad record is one line naming its file."""
    kind = record.get("kind")
    if kind not in RECORD_TYPES:
        raise UserError(f"{path}: unknown record kind {kind!r} (expected one of {', '.join(KINDS)})")
    task = record.get("task")
    if task not in TASK_METRICS:
        raise UserError(f"{path}: unknown task {task!r} (expected one of {', '.join(TASK_METRICS)})")
    RECORD_TYPES[kind].check(record, path)
    if kind in ("result", "evaluation"):
        metric = TASK_METRICS[task]
        value = record["metrics"].get(metric)
        if not isinstance(value, _NUMBER) or isinstance(value, bool):
            raise UserError(f"{path}: {task} {kind} record has no numeric metrics[{metric!r}]")
        if not isinstance(record["dataset"].get("synthetic"), bool):
            raise UserError(f"{path}: {kind} record field dataset.synthetic must be true or false")
    if kind == "evaluation" and not isinstance(record["weights"].get("source"), str):
        raise UserError(f"{path}: evaluation record field weights.source must be a string")
    return record


def load_record(path: str | Path) -> dict[str, Any]:
    return validate(read_record(path), path)


def load_store(directory: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every ``*.json`` under ``directory`` (recursively) with its path, validated, in file-name order.

    A missing folder is an empty store (a fresh clone with no records yet).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--records: {directory} is not a folder")
    paths = sorted(directory.rglob("*.json"), key=lambda p: p.relative_to(directory).as_posix())
    return [(path, load_record(path)) for path in paths]


def load_records(directory: str | Path) -> list[dict[str, Any]]:
    """The records of ``load_store`` without their paths."""
    return [record for _, record in load_store(directory)]


def dirty_reason(record: dict[str, Any]) -> str | None:
    """Why a measured record cannot be traced to a commit (made from uncommitted changes), else None."""
    environment = record.get("environment")
    if not isinstance(environment, dict):
        return None  # profile records: counts the leaderboard recomputes, no commit
    commit = str(environment.get("commit") or "")
    if commit.endswith("+dirty") or environment.get("dirty") is True:
        return f"made from a tree with uncommitted changes (commit {commit or '?'})"
    if not commit or commit == "unknown":
        return "names no commit (made outside a git checkout)"
    return None


# A 513x513 segmentation forward takes 18-250 ms on 2 cores (onnxruntime-int8 to eager), so the quick
# tier's 50 runs last seconds and its p50 is not a figure to rank runtimes by; those rows are timed at the
# normal tier (issue 13.7). The tier names are benchmark.latency.timing.TIERS' (a sibling layer: not imported).
MIN_LATENCY_TIER = {"segmentation": "normal"}
_TIER_ORDER = ("quick", "normal")


def tier_reason(record: dict[str, Any]) -> str | None:
    """Why a latency record was timed too briefly for the leaderboard (below its task's tier), else None."""
    needed = MIN_LATENCY_TIER.get(str(record.get("task")))
    if record.get("kind") != "latency" or needed is None:
        return None
    tier = str(record.get("tier"))
    if tier in _TIER_ORDER and _TIER_ORDER.index(tier) >= _TIER_ORDER.index(needed):
        return None
    return f"{record['task']} latency timed at the {tier} tier; its rows need --tier {needed}"


def emulated_reason(record: dict[str, Any]) -> str | None:
    """Why a device record's timings mean nothing: its target ran under an emulator (qemu-user)."""
    emulated = (record.get("target") or {}).get("emulated") if isinstance(record.get("target"), dict) else None
    return f"timed on an emulated target ({emulated}): its timings are the emulator's" if emulated else None


def refusal_reason(record: dict[str, Any]) -> str | None:
    """Why the leaderboard cannot take a record (dirty tree, too short a timing, an emulated target), else None."""
    return emulated_reason(record) or dirty_reason(record) or tier_reason(record)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def content_digest(record: dict[str, Any]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def weights_name(record: dict[str, Any]) -> str:
    """The evaluated weights in a file name: the checkpoint's stem, or the source (``pretrained:torchvision``)."""
    weights = record.get("weights") or {}
    file = weights.get("file")
    return Path(str(file)).stem if file else str(weights.get("source", "weights"))


def dataset_slug(record: dict[str, Any]) -> str:
    dataset = record.get("dataset") or {}
    return str(dataset.get("name") or Path(str(dataset.get("root") or "data")).name)


def record_name(record: dict[str, Any]) -> str:
    """``<kind>-<task>-<backbone>-w<width>-r<res>[-<runtime>-t<threads>-b<batch>]-<digest>.json``;
    evaluations: ``evaluation-<task>-<weights>-<preset>-<dataset>-n<images>[-<setting><value>][-<runtime>]-<digest>.json``.

    Profile records are named by their key alone, so a recount replaces the old count.
    """
    kind = record["kind"]
    if kind == "profile":
        return f"profile-{_slug(record['key'])}.json"
    parts = [
        kind,
        record["task"],
        record["backbone"],
        f"w{float(record.get('width') or 1.0):g}",
        f"r{record['resolution']}",
    ]
    if kind == "latency":
        parts += [record["runtime"], f"t{record['threads']}", f"b{record['batch_size']}"]
    if kind == "evaluation":
        parts = [kind, record["task"], weights_name(record), record["preset"], dataset_slug(record),
                 f"n{record['images']}", *[f"{k}{v}" for k, v in sorted((record.get("settings") or {}).items())]]  # fmt: skip
        if record.get("runtime") not in (None, "eager"):  # the float import's records keep their names
            parts.append(record["runtime"])
    return f"{_slug('-'.join(str(p) for p in parts))}-{content_digest(record)}.json"


def add_record(
    record: dict[str, Any], directory: str | Path, source: str | Path = "<record>"
) -> tuple[Path, bool]:
    """Validate and write ``record`` into the store atomically; returns (path, changed).

    Writing a record whose file already holds the same content changes nothing.
    """
    validate(record, source)
    path = Path(directory) / record_name(record)
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path, False
    write_json_atomic(path, record)
    return path, True


def import_record_file(path: str | Path, directory: str | Path) -> tuple[Path, bool]:
    """Copy a record file (a run's ``result.json``, a latency record) into the store, with the raw
    tool log a device record keeps beside it (``.log``) under the record's new name."""
    target, changed = add_record(load_record(path), directory, source=path)
    log = Path(path).with_suffix(".log")
    if log.is_file() and (not target.with_suffix(".log").is_file() or changed):
        write_text_atomic(target.with_suffix(".log"), log.read_text(encoding="utf-8"))
    return target, changed
