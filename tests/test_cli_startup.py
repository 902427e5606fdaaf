"""The command line answers at once: parsing (and --help) imports no torch, no model code."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from benchmark.cli import build_parser
for task in ("classification", "detection", "segmentation"):
    parser = build_parser(task)
    for command in ("run", "eval", "latency", "export", "profile", "sweep", "list", "leaderboard"):
        try:
            parser.parse_known_args([command, "--task", task])
        except SystemExit:  # a command's required flag missing: parsed all the same
            pass
heavy = sorted(m for m in ("torch", "torchvision", "lightning", "timm", "onnx", "openvino") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_parsing_every_command_imports_no_torch() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "none", done.stdout + done.stderr


def test_help_lists_the_task_flags_generated_from_the_options() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmark.cli", "run", "--task", "detection", "--help"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert "--nms {class-wise,fast}" in done.stdout and "--head-width HEAD_WIDTH" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "benchmark.cli", "run", "--task", "detection", "--nms", "x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--nms" in bad.stderr
