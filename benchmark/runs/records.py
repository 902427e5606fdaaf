"""Record files: reading one (its schema version and kind), the environment a measured record names
(versions, host, commit, command line), and atomic writes that never leave half a file. What each
kind holds is ``benchmark.runs.schema``."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from backbones.errors import UserError
from benchmark.runs.host import this_host
from benchmark.runs.schema import SCHEMA_VERSION

# The command line of the ``bench`` call this process runs (set by the CLI's ``main``), kept in
# every record's environment so the record says how to make it again.
_COMMAND: list[str] = []


def set_command_line(argv: list[str]) -> None:
    _COMMAND[:] = list(argv)


REPO_ROOT = Path(__file__).resolve().parents[2]


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    Readers see the old file or the new one, never a partial one; a crash leaves the old file.
    The file gets the mode a plain ``open`` would give (0644 under the usual umask), not
    ``mkstemp``'s private 0600: records are shared and committed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Load a record and check its schema; a bad file is a one-line error naming it."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: record file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: a record must be a JSON object")
    if record.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{path}: schema_version {record.get('schema_version')!r} is not the supported {SCHEMA_VERSION}"
        )
    for key in ("kind", "task", "backbone"):
        if key not in record:
            raise UserError(f"{path}: record has no {key!r} field")
    return record


def git_commit() -> str:
    """The suite's commit (with ``+dirty`` when the tree has changes), or ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("+dirty" if dirty else "")) if commit else "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions, hardware and commit that a measured number depends on."""
    import lightning
    import torch
    import torchvision

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        # Vendor, model, inference-relevant ISA flags and the label leaderboards group timings by.
        "host": this_host().to_json(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "commit": git_commit(),
        "command": shlex.join(_COMMAND) if _COMMAND else None,
    }
    return env
