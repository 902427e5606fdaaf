"""Typed task options: each task's own settings as one frozen dataclass, whose fields carry their
help text and choices, so the command line is generated from them (``benchmark.cli.arguments``)
and ``tasks/`` never sees argparse. Torch-free: the CLI reads them before it imports any model.
"""

from __future__ import annotations

import importlib
from dataclasses import field
from typing import Any

# Where each task's options class lives (imported on demand; each module imports no torch).
OPTIONS = {
    "classification": "tasks.classification.options:ClassificationOptions",
    "detection": "tasks.detection.options:DetectionOptions",
    "segmentation": "tasks.segmentation.options:SegmentationOptions",
}


def option(default: Any, help: str, *, choices: tuple | None = None, type: Any = None, flag: bool = True) -> Any:
    """A dataclass field that is also a command-line flag (``--name-with-dashes``): a bool default
    makes an on/off flag; ``type`` is the flag's parser where the default does not show it.
    ``flag=False``: a run-config key with no flag (what an imported file's own settings imply)."""
    kind = type or (None if default is None or isinstance(default, bool) else default.__class__)
    return field(default=default, metadata={"help": help, "choices": choices, "type": kind,
                                            "boolean": isinstance(default, bool), "flag": flag})


def options_class(task: str) -> type:
    """The options dataclass of ``task`` (a registered task name)."""
    module, _, name = OPTIONS[task].partition(":")
    return getattr(importlib.import_module(module), name)
