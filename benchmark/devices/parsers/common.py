"""What every device tool's parser shares: the result record, the line cleaner, the run splitter.

A log is read the way it reaches us: pasted from a terminal, captured by ``adb shell`` (``\\r``),
or taken from ``adb logcat`` in its brief, time or threadtime format, often indented. All times
are kept in microseconds, the canonical unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from backbones.errors import UserError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# logcat: threadtime "07-14 13:16:28.097 23002 23002 I tflite  : ", time "07-14 13:16:28.097 I/tflite  ( 123): ",
# brief "I/tflite  ( 123): ", tag "I tflite  : ". The level letter is followed by a space or a slash.
LOGCAT = re.compile(r"^(?:\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+)?(?:\d+\s+\d+\s+)?(?P<level>[VDIWEF])[ /]\s*[\w.$-]+\s*"
                    r"(?:\(\s*\d+\))?\s*: ")  # fmt: skip
TOOL_LOG = re.compile(r"^(?:(?:INFO|VERBOSE|WARNING|WARN|ERROR|DEBUG): |\[ (?:INFO|WARNING|ERROR) \] ?)")
ERROR_WORDS = re.compile(r"\bERROR\b|\berror\b|Error|[Ff]ailed|\bnot found\b|Segmentation fault|Aborted")


class ToolOutputError(UserError):
    """The device tool printed no measurement (it failed, crashed or was cut off)."""


@dataclass(frozen=True)
class Delegation:
    """What one line of the log says a delegate took: ``coverage`` full | partial | none | None (not said)."""

    name: str
    coverage: str | None
    nodes: int | None = None
    total_nodes: int | None = None
    kernels: int | None = None
    line: str = ""


@dataclass(frozen=True)
class ToolResult:
    """What a device tool measured: timed-phase statistics in microseconds, plus what it said.

    ``count`` is None when the tool prints no iteration count (OpenVINO 2019's benchmark_app)."""

    tool: str
    count: int | None
    avg_us: float
    min_us: float | None = None
    max_us: float | None = None
    std_us: float | None = None
    p50_us: float | None = None
    p90_us: float | None = None
    p99_us: float | None = None
    first_us: float | None = None
    init_us: float | None = None
    warmup_avg_us: float | None = None
    runs_us: tuple[float, ...] | None = None
    duration_s: float | None = None
    peak_memory_mb: float | None = None
    memory: dict[str, float] = field(default_factory=dict)
    delegate: str | None = None
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    delegate_coverage: str | None = None
    delegations: tuple[Delegation, ...] = ()
    tool_version: str | None = None
    runtime_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def strip_prefixes(raw: str) -> tuple[str, str | None]:
    """One line without indentation, logcat's and the tool's own prefixes; (text, logcat level or None)."""
    line, level = raw.strip(), None
    if m := LOGCAT.match(line):
        line, level = line[m.end() :].strip(), m["level"]
    while (stripped := TOOL_LOG.sub("", line, count=1).strip()) != line:
        line = stripped
    return line, level


def clean_lines(text: str) -> list[str]:
    """The log's lines without ``\\r``, indentation and the logging prefixes."""
    return [strip_prefixes(raw)[0] for raw in text.replace("\r", "").split("\n")]


def first_error(text: str) -> str:
    """The tool's own error: the first line logged at error level or naming an error, else the last line."""
    lines = [strip_prefixes(raw) for raw in text.replace("\r", "").split("\n")]
    for line, level in lines:
        if line and (level in ("E", "F") or ERROR_WORDS.search(line)):
            return line[:200]
    tail = [line for line, _ in lines if line]
    return tail[-1][:200] if tail else "no output"


def values(line: str) -> dict[str, float]:
    """``key=value`` tokens, scientific notation whole (``avg=2.95034e+06``)."""
    return {k: float(v) for k, v in re.findall(rf"(\w+)=({NUMBER})(?![\w.])", line)}


def split_runs(lines: Sequence[str], markers: Sequence[re.Pattern[str]]) -> list[list[str]]:
    """Cut a log into runs of one tool: ``markers`` are lines each run prints once, in that order, so
    a marker that is not later than the last one seen starts the next run."""
    runs: list[list[str]] = [[]]
    last = -1
    for line in lines:
        index = next((i for i, marker in enumerate(markers) if marker.match(line)), None)
        if index is not None:
            if index <= last and any(runs[-1]):
                runs.append([])
            last = index
        runs[-1].append(line)
    return runs


def last_completed(tool: str, runs: list[list[str]], parse: Callable[[list[str], str], ToolResult], text: str) -> ToolResult:
    """The log's last run, parsed; with several runs the one reported says so, and a last run
    that measured nothing is refused naming the runs (a log must end with the run it reports)."""
    if len(runs) == 1:
        return parse(runs[0], text)
    parsed: list[ToolResult | ToolOutputError] = []
    for run in runs:
        try:
            parsed.append(parse(run, "\n".join(run)))
        except ToolOutputError as error:
            parsed.append(error)
    last = parsed[-1]
    if isinstance(last, ToolOutputError):
        done = [str(i + 1) for i, item in enumerate(parsed) if isinstance(item, ToolResult)]
        said = str(last).split(" (", 1)[-1].rstrip(")") if " (" in str(last) else str(last)
        raise ToolOutputError(f"{tool}: the log holds {len(runs)} runs and the last (run {len(runs)}) printed no "
                              f"measurement ({said}); run(s) {', '.join(done) or 'none'} did: give the log of one "
                              "completed run")  # fmt: skip
    return replace(last, details={**last.details, "runs_in_log": len(runs), "run_reported": len(runs)})
