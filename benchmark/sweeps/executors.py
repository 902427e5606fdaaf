"""Where a sweep's cells run: submitit executors (``local`` processes or ``slurm`` jobs), one call site.

A cell is one ``bench run`` / ``bench latency`` command wrapped in ``submitit.helpers.CommandFunction``.
``CellJob`` is checkpointable: when submitit requeues it (timeout or preemption signal, or
``scontrol requeue``) the same command runs again and, finding a checkpoint in its run folder, adds
``--resume`` (the suite's exact-resume path: the same weights as an uninterrupted run).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
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


# Refused in any --slurm-config / --sbatch / --partition value: a newline ends the #SBATCH line and
# the next line of the batch script runs on the compute node; the others would mean something to a
# shell if a value ever reached one. (Slurm's own constraint syntax with & and | is refused too.)
SHELL_CHARACTERS = frozenset(";&|$`<>\\'\"(){}*?!#~")
SBATCH_LINE = re.compile(r"--[A-Za-z][A-Za-z0-9_-]*(=.+)?")
TEXT_FIELDS = ("partition", "account", "qos")
COUNT_FIELDS = {"gpus_per_job": 0, "nodes": 1, "cpus": 1, "time_min": 1, "array_parallelism": 1}  # field: minimum


def _bad_character(text: str) -> str | None:
    for char in text:
        if ord(char) < 32 or ord(char) == 127 or char.isspace() or char in SHELL_CHARACTERS:
            return char
    return None


def check_slurm_text(label: str, value: str, sbatch_line: bool = False) -> str:
    """A value that goes into the batch script: no control, space or shell characters; one line if not."""
    char = _bad_character(value)
    if char is not None:
        raise UserError(f"{label}: {value!r} holds {char!r}; newlines, spaces and shell characters are refused")
    if sbatch_line and not SBATCH_LINE.fullmatch(value):
        raise UserError(f"{label}: {value!r} is not an sbatch option (--key=value or --key)")
    return value


def flag_label(key: str) -> str:
    """The ``bench sweep`` flag that sets SlurmOptions' field ``key``."""
    return "--sbatch" if key == "sbatch_lines" else "--" + key.replace("_", "-")


def check_slurm_values(values: dict[str, Any], label_of: Callable[[str], str] = flag_label) -> dict[str, Any]:
    """Types, ranges and characters of SlurmOptions' fields; ``label_of(key)`` names the source in errors."""
    for key, value in values.items():
        label = label_of(key)
        if key in TEXT_FIELDS and value is not None:
            if not isinstance(value, str):
                raise UserError(f"{label}: must be a string, got {value!r}")
            check_slurm_text(label, value)
        elif key in COUNT_FIELDS and (isinstance(value, bool) or not isinstance(value, int) or value < COUNT_FIELDS[key]):
            raise UserError(f"{label}: must be an integer >= {COUNT_FIELDS[key]}, got {value!r}")
        elif key == "mem_gb" and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                                        or value <= 0):
            raise UserError(f"{label}: must be a number of GB > 0, got {value!r}")
        elif key == "sbatch_lines":
            if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
                raise UserError(f"{label}: must be a list of \"--key=value\" strings, got {value!r}")
            for index, line in enumerate(value):
                check_slurm_text(f"{label}[{index}]", line, sbatch_line=True)
    return values


def load_slurm_yaml(path: str) -> dict[str, Any]:
    """The ``slurm:`` block of a YAML file, keys as SlurmOptions' fields, each value checked."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"--slurm-config {path}: {str(error).splitlines()[0]}") from None
    block = data.get("slurm", data) if isinstance(data, dict) else None
    known = set(SlurmOptions.__dataclass_fields__)
    if not isinstance(block, dict) or set(block) - known:
        bad = sorted(map(str, set(block) - known)) if isinstance(block, dict) else ["(not a mapping)"]
        raise UserError(f"--slurm-config {path}: unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return check_slurm_values(block, lambda key: f"--slurm-config {path}: {key}")


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


def import_submitit() -> Any:
    """submitit, imported without its logging set-up: at import it runs ``logging.config.dictConfig``,
    which closes every logging handler this process already has (an application's file handlers,
    pytest's capture). Its warnings still reach stderr (logging's last resort); its jobs, in processes
    of their own, set up their logging as usual."""
    if "submitit" not in sys.modules:
        saved = os.environ.get("SUBMITIT_LOG_LEVEL")
        os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
        try:
            import submitit  # noqa: F401
        finally:
            if saved is None:
                os.environ.pop("SUBMITIT_LOG_LEVEL", None)
            else:
                os.environ["SUBMITIT_LOG_LEVEL"] = saved
    return sys.modules["submitit"]


def make_executor(kind: str, folder: Path, options: SlurmOptions, exclusive: bool = False):
    """A submitit executor for ``kind``; ``exclusive`` gives latency jobs a node of their own."""
    submitit = import_submitit()

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


OUTCOMES = ("success", "failed")


def outcome_path(jobs: Path, job_id: str) -> Path:
    """The suite's own record of how a job's command ended (JSON; submitit's result pickle is never read)."""
    return Path(jobs) / f"{job_id}_outcome.json"


def read_outcome(path: Path) -> tuple[str, int | None]:
    """(state, return code): success or failed from the job's outcome file; ("", None) when it wrote
    none (killed), ("unknown", None) when the file is not one this suite wrote."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "", None
    except (OSError, ValueError):
        return "unknown", None
    if not isinstance(data, dict) or data.get("state") not in OUTCOMES:
        return "unknown", None
    code = data.get("returncode")
    return data["state"], code if isinstance(code, int) and not isinstance(code, bool) else None


class CellJob:
    """One sweep cell's command; resumes from its run folder's checkpoint when run again."""

    def __init__(self, argv: list[str], output: Path, env: dict[str, str], resumable: bool, jobs: Path) -> None:
        self.argv, self.output, self.env, self.resumable = argv, Path(output), env, resumable
        self.jobs = Path(jobs)

    def command(self) -> list[str]:
        from benchmark.runs.training import latest_checkpoint

        resume = self.resumable and latest_checkpoint(self.output / "checkpoints") is not None
        return self.argv + (["--resume"] if resume else [])

    def __call__(self) -> str:
        """Run the command; its outcome file is written (atomically) whether it succeeds or fails."""
        import submitit
        from submitit.core.utils import FailedJobError
        from submitit.helpers import CommandFunction

        from benchmark.runs.records import write_json_atomic

        env = {k: v for k, v in os.environ.items() if k != "BENCH_RUN_OUTPUT"}
        env.update(self.env)
        print("cell command:", shlex.join(self.command()), flush=True)
        outcome = outcome_path(self.jobs, submitit.JobEnvironment().job_id)
        try:
            output = CommandFunction(self.command(), verbose=True, env=env)()
        except FailedJobError as error:
            code = getattr(error.__cause__, "returncode", None)
            write_json_atomic(outcome, {"state": "failed", "returncode": code})
            raise
        write_json_atomic(outcome, {"state": "success", "returncode": 0})
        return output[-2000:]

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue hook (timeout / preemption signal): run the same cell again; it resumes."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self)
