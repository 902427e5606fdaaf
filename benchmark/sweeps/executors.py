"""Where a sweep's cells run: submitit executors (``local`` processes or ``slurm`` jobs), one call site.

A cell is one ``bench run`` / ``bench latency`` command wrapped in ``submitit.helpers.CommandFunction``.
``CellJob`` is checkpointable: when submitit requeues it (timeout or preemption signal, or
``scontrol requeue``) the same command runs again and, finding a checkpoint in its run folder, adds
``--resume`` (the suite's exact-resume path: the same weights as an uninterrupted run).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backbones.errors import UserError

EXECUTORS = ("local", "slurm")


@dataclass
class SlurmOptions:
    """sbatch settings of a sweep's jobs (flags, or the ``slurm:`` block of a YAML file)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_job: int = 0
    nodes: int = 1
    cpus: int = 1
    mem_gb: float | None = None
    time_min: int = 60
    array_parallelism: int = 64
    sbatch_lines: list[str] = field(default_factory=list)  # extra "--key=value" lines


def load_slurm_yaml(path: str) -> dict[str, Any]:
    """The ``slurm:`` block of a YAML file, keys as SlurmOptions' fields."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"--slurm-config {path}: {str(error).splitlines()[0]}") from None
    block = data.get("slurm", data) if isinstance(data, dict) else None
    known = set(SlurmOptions.__dataclass_fields__)
    if not isinstance(block, dict) or set(block) - known:
        bad = sorted(set(block) - known) if isinstance(block, dict) else ["(not a mapping)"]
        raise UserError(f"--slurm-config {path}: unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return block


def max_array_size() -> int:
    """``MaxArraySize`` from ``scontrol show config`` (an array holds at most this many tasks)."""
    try:
        text = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 1001
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return max(1, int(value.strip()))
    return 1001  # Slurm's default


def make_executor(kind: str, folder: Path, options: SlurmOptions, exclusive: bool = False):
    """A submitit executor for ``kind``; ``exclusive`` gives latency jobs a node of their own."""
    import submitit

    if kind not in EXECUTORS:
        raise UserError(f"--executor: unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--executor slurm: sbatch is not on PATH (run on a cluster login node, or install slurm-client)")
    executor = submitit.AutoExecutor(folder=folder, cluster=kind)
    tasks = max(1, options.gpus_per_job)  # one task (DDP rank) per GPU, ranks from SLURM
    params: dict[str, Any] = {"timeout_min": options.time_min, "cpus_per_task": options.cpus,
                              "tasks_per_node": tasks, "nodes": options.nodes}
    if options.gpus_per_job:
        params["gpus_per_node"] = options.gpus_per_job
    if options.mem_gb:
        params["mem_gb"] = options.mem_gb
    if kind == "slurm":
        extra = {}
        for line in options.sbatch_lines:
            key, _, value = line.lstrip("-").partition("=")
            extra[key] = value or True
        extra["requeue"] = True  # node failure / preemption: Slurm puts the job back in the queue
        params.update(slurm_partition=options.partition, slurm_account=options.account, slurm_qos=options.qos,
                      slurm_array_parallelism=1 if exclusive else options.array_parallelism,
                      slurm_exclusive=True if exclusive else None, slurm_additional_parameters=extra,
                      slurm_job_name="bench-sweep")
        params = {k: v for k, v in params.items() if v is not None}
    executor.update_parameters(**params)
    return executor


class CellJob:
    """One sweep cell's command; resumes from its run folder's checkpoint when run again."""

    def __init__(self, argv: list[str], output: Path, env: dict[str, str], resumable: bool) -> None:
        self.argv, self.output, self.env, self.resumable = argv, Path(output), env, resumable

    def command(self) -> list[str]:
        from benchmark.runs.training import latest_checkpoint

        resume = self.resumable and latest_checkpoint(self.output / "checkpoints") is not None
        return self.argv + (["--resume"] if resume else [])

    def __call__(self) -> str:
        from submitit.helpers import CommandFunction

        env = {k: v for k, v in os.environ.items() if k != "BENCH_RUN_OUTPUT"}
        env.update(self.env)
        print("cell command:", shlex.join(self.command()), flush=True)
        return CommandFunction(self.command(), verbose=True, env=env)()[-2000:]

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue hook (timeout / preemption signal): run the same cell again; it resumes."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)
