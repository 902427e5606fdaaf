"""Where a model's weights came from, for every record: one hasher, one provenance record."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def sha256_of(path: str | Path) -> str:
    """The file's SHA-256, read in 1 MiB chunks (checkpoints and models of hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_provenance(cfg: dict[str, Any], checkpoint: str | None = None) -> dict[str, Any]:
    """Where the weights came from, with the file's sha256: a ``bench run`` checkpoint, an official
    ``.tflite``, a library's pretrained weights, or the backbone's random initialisation. The file is
    named by its base name (a path says where it lay on one machine; the hash says what it is)."""
    if checkpoint:
        return {"source": "checkpoint", "file": Path(checkpoint).name, "sha256": sha256_of(checkpoint)}
    weights = cfg.get("weights") or cfg.get("pretrained")
    if weights in (None, "none"):
        return {"source": "random init", "file": None, "sha256": None}
    if Path(str(weights)).is_file():
        source = "tflite" if Path(weights).suffix == ".tflite" else "checkpoint"
        return {"source": source, "file": Path(weights).name, "sha256": sha256_of(weights)}
    return {"source": f"pretrained:{weights}", "file": None, "sha256": None}  # a library's weights, by name
