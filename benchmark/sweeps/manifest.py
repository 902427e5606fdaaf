"""``sweep.json``: a sweep folder's grid fingerprint and every cell's jobs, checked when read.

``bench sweep --status DIR`` may be pointed at any folder, so the file is data to check, never
trusted: bad JSON, a missing key or a wrong type is one line naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from backbones.errors import UserError
from benchmark.sweeps.executors import EXECUTORS
from benchmark.sweeps.plan import Plan

MANIFEST = "sweep.json"
KINDS = ("run", "latency")


def grid_fingerprint(plan: Plan) -> str:
    grid = {"cells": [asdict(c) for c in plan.cells], "runtimes": plan.runtimes, "stages": plan.stages,
            "run_args": plan.run_args, "latency_args": plan.latency_args, "data": plan.data}
    return hashlib.sha256(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:16]


def _list_of(value: Any, kinds: tuple[type, ...], allow_none: bool = False) -> bool:
    return isinstance(value, list) and all(
        (item is None and allow_none) or (isinstance(item, kinds) and not isinstance(item, bool)) for item in value
    )


def check_manifest(data: Any, path: Path) -> dict[str, Any]:
    """The manifest if its shape is right; else a UserError naming ``path`` and the first bad key."""
    def bad(what: str) -> UserError:
        return UserError(f"{path}: {what} (not a sweep manifest this suite wrote)")

    if not isinstance(data, dict):
        raise bad("expected a JSON object")
    if not isinstance(data.get("fingerprint"), str):
        raise bad("'fingerprint' must be a string")
    jobs = data.get("jobs")
    if not isinstance(jobs, dict):
        raise bad("'jobs' must be an object")
    if jobs and data.get("executor") not in EXECUTORS:
        raise bad(f"'executor' must be one of {', '.join(EXECUTORS)}, got {data.get('executor')!r}")
    for name, entry in jobs.items():
        where = f"jobs[{name!r}]"
        if not isinstance(entry, dict):
            raise bad(f"{where} must be an object")
        ids = entry.get("job_ids")
        if not _list_of(ids, (str,)) or not ids:
            raise bad(f"{where}.job_ids must be a non-empty list of strings")
        if not isinstance(entry.get("output"), str) or entry.get("kind") not in KINDS:
            raise bad(f"{where} needs 'output' (a string) and 'kind' ({' or '.join(KINDS)})")
        if not _list_of(entry.get("runtimes", []), (str,)):
            raise bad(f"{where}.runtimes must be a list of strings")
        if not _list_of(entry.get("submitted", []), (int, float)):
            raise bad(f"{where}.submitted must be a list of times")
        if not _list_of(entry.get("process_starts", []), (int,), allow_none=True):
            raise bad(f"{where}.process_starts must be a list of integers")
    return data


def load_manifest(folder: Path, plan: Plan | None) -> dict[str, Any]:
    """The folder's manifest (a fresh one for ``plan`` where there is none); another grid's is refused."""
    path = folder / MANIFEST
    if not path.is_file():
        if plan is None:
            raise UserError(f"--status {folder}: no {MANIFEST} there (not a sweep folder)")
        return {"fingerprint": grid_fingerprint(plan), "jobs": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read it ({error})") from None
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    manifest = check_manifest(data, path)
    if plan is not None and manifest["fingerprint"] != grid_fingerprint(plan):
        raise UserError(f"--workdir {folder}: a sweep of another grid ({manifest.get('command', '?')}); "
                        "use a new folder for this grid")
    return manifest
