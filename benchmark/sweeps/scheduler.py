"""What the scheduler says about a sweep's jobs: live, ended, or unknown, never guessed.

A sweep resubmits a cell only when its job has ended and left no record. Taking a job for ended
when the scheduler could not be asked (``squeue`` failed, timed out, or is missing) would start a
second job training into the same run folder as the first, so such a job is *unknown* and nothing
is done about it until the scheduler answers again. Within one sweep process the last answer is
kept: a job already seen ended stays ended. A local job is a process, known by its PID and its
start time (``/proc/PID/stat`` field 22) together, so a PID the system reuses is not taken for it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

LIVE, ENDED, UNKNOWN = "live", "ended", "unknown"
# States from which Slurm never starts the job again. PREEMPTED and NODE_FAIL are left out: the
# sweep's jobs are submitted with --requeue, so Slurm may queue them again; they count as ended
# once squeue no longer lists them.
SLURM_ENDED = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "OUT_OF_MEMORY", "TIMEOUT"})
TIMEOUT_S = 60


class JobPhase(NamedTuple):
    """One job as the scheduler last described it."""

    phase: str  # live, ended, unknown
    state: str = ""  # the scheduler's word (RUNNING, PENDING, CANCELLED, ...), "" when not listed
    reason: str = ""  # why it is pending, or why it is unknown


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _run(argv: list[str]) -> tuple[subprocess.CompletedProcess | None, str]:
    """Run a scheduler client; (result, "") or (None, why it could not be asked)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]} failed: no answer in {TIMEOUT_S} s"
    except OSError as error:
        return None, f"{argv[0]} failed: {error.strerror or error}"
    return done, ""


def squeue_states(job_ids: list[str]) -> tuple[dict[str, tuple[str, str]] | None, str]:
    """job id -> (state, reason) for every job squeue lists (one line per array task), or (None, error).

    squeue answers a lone unknown id with exit 1 and "Invalid job id specified": that is an answer
    (the controller no longer knows the job), not a failure.
    """
    arrays = sorted({j.split("_")[0] for j in job_ids})
    done, error = _run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r", "-j", ",".join(arrays)])
    if done is None:
        return None, error
    if done.returncode != 0:
        if "Invalid job id specified" in done.stderr:
            return {}, ""
        return None, f"squeue failed: {_one_line(done.stderr) or f'exit code {done.returncode}'}"
    states = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3:
            return None, f"squeue failed: unexpected output {line.strip()[:100]!r}"
        states[parts[0]] = (parts[1], parts[2])
    return states, ""


def sacct_states(job_ids: list[str]) -> tuple[dict[str, tuple[str, str]] | None, str]:
    """job id -> (state, "") from Slurm's accounting, or (None, error) where accounting is off."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    done, error = _run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(arrays)])
    if done is None:
        return None, error
    if done.returncode != 0:
        return None, f"sacct failed: {_one_line(done.stderr) or f'exit code {done.returncode}'}"
    states = {}
    for line in done.stdout.splitlines():
        job, sep, state = line.strip().partition("|")
        if sep and state:
            states[job] = (state.split()[0], "")  # "CANCELLED by 1000" -> CANCELLED
    return states, ""


@dataclass
class SlurmWatch:
    """The sweep's view of its Slurm jobs, refreshed by ``look`` and kept between looks."""

    known: dict[str, JobPhase] = field(default_factory=dict)

    def look(self, job_ids: list[str]) -> None:
        """Ask squeue (sacct when squeue cannot answer) about ``job_ids``; never forget an ended job."""
        if not job_ids:
            return
        listed, error = squeue_states(job_ids)
        complete = listed is not None  # squeue lists every job the controller knows: unlisted = ended
        if listed is None:
            listed, sacct_error = sacct_states(job_ids)
            if listed is None:
                listed = {}
                error = f"{error}; {sacct_error}" if sacct_error else error
        for job in job_ids:
            if self.known.get(job, JobPhase(UNKNOWN)).phase == ENDED:
                continue
            if job in listed:
                state, reason = listed[job]
                self.known[job] = JobPhase(ENDED if state in SLURM_ENDED else LIVE, state, reason)
            elif complete:
                self.known[job] = JobPhase(ENDED, "", "no longer listed by squeue")
            else:
                last = self.known.get(job)
                seen = f" (last seen {last.state})" if last and last.state else ""
                self.known[job] = JobPhase(UNKNOWN, last.state if last else "", f"{error}{seen}")

    def phase(self, job_id: str) -> JobPhase:
        return self.known.get(job_id, JobPhase(UNKNOWN, "", "not asked yet"))


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (/proc/PID/stat field 22), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command name) may hold spaces and parentheses: count from the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19])  # fields[0] is field 3 (state), so field 22 is fields[19]


def local_phase(job_id: str, start: int | None) -> JobPhase:
    """A local job: live while the process with this PID *and* start time runs (a zombie has ended)."""
    if start is None:
        return JobPhase(UNKNOWN, "", f"no process start time recorded for job {job_id}")
    try:
        stat = Path(f"/proc/{int(job_id)}/stat").read_text()
    except (OSError, ValueError):
        return JobPhase(ENDED, "", "process gone")
    fields = stat.rsplit(")", 1)[-1].split()
    if int(fields[19]) != start:
        return JobPhase(ENDED, "", f"process gone (PID {job_id} now another process)")
    if fields[0] in ("Z", "X"):
        return JobPhase(ENDED, "", "process exited")
    return JobPhase(LIVE, "RUNNING")
