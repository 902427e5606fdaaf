"""The fresh work folder on the target: made, the tool run in it with its pid noted, and removed
again on every way out, Ctrl-C included (then the tool is stopped first: killing the local adb or
ssh client does not stop a process on the device, which would go on heating it)."""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from backbones.errors import UserError
from benchmark.devices.transports import Transport

TOOL_LOG, TOOL_PID = "tool.log", "tool.pid"


def make_work_folder(transport: Transport, root: str) -> str:
    made = transport.shell(["mktemp", "-d", f"{root}/bench-XXXXXX"], timeout=60)
    work = made.stdout.strip()
    if made.returncode or not work:
        raise UserError(f"--device {transport.address}: cannot make a work folder in {root}: {made.stderr.strip()[:200]}")
    return work


def tool_command(argv: list[str], work: str) -> str:
    """The sh line that runs the tool: its output to ``tool.log`` on the device (the tool's own,
    not the transport's), its pid to ``tool.pid`` (to stop it on Ctrl-C), then ``rc=N``."""
    log, pid = shlex.quote(f"{work}/{TOOL_LOG}"), shlex.quote(f"{work}/{TOOL_PID}")
    return f'{shlex.join(argv)} > {log} 2>&1 & echo $! > {pid}; wait $!; echo "rc=$?"'


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ctrl-C waits until the block is done (then raises): a clean-up or a record is never left half-done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def clean_work_folder(transport: Transport, work: str, *, keep: bool, stop_tool: bool) -> str:
    """Stop the tool (``stop_tool``: after Ctrl-C) and remove ``work`` unless ``keep``; what was done, in words."""
    with sigint_deferred():
        try:
            if stop_tool:
                pid = shlex.quote(f"{work}/{TOOL_PID}")
                transport.shell(["sh", "-c", f'[ -r {pid} ] && kill "$(cat {pid})" 2>/dev/null; true'], timeout=60)
            if keep:
                return f"the work folder {work} kept (--keep)"
            gone = transport.shell(["rm", "-rf", work], timeout=60)
        except UserError as error:
            return f"the work folder {work} may be left: {error}"
        if gone.returncode:
            return f"the work folder {work} may be left: rm -rf said {(gone.stderr or gone.stdout).strip()[:160]}"
        return f"the work folder {work} removed"
