"""The fresh work folder on the target: made, the tool run in it with its pid noted, and removed
again on every way out, Ctrl-C included (then the tool is stopped first: killing the local adb or
ssh client does not stop a process on the device, which would go on heating it)."""

from __future__ import annotations

import secrets
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from backbones.errors import UserError
from benchmark.devices.transports import Transport

TOOL_LOG, TOOL_PID = "tool.log", "tool.pid"


def work_folder_name(root: str) -> str:
    """A fresh folder's name, chosen here so that it is known (and removed) even when Ctrl-C comes
    while the device is still making it."""
    return f"{root.rstrip('/') or ''}/bench-{secrets.token_hex(6)}"


def make_work_folder(transport: Transport, work: str) -> None:
    """Make ``work`` (private, and new: an existing folder of that name is an error, never reused)."""
    made = transport.shell(["mkdir", "-m", "700", work], timeout=60)
    if made.returncode:
        said = (made.stderr or made.stdout).strip()[:200]
        raise UserError(f"--device {transport.address}: cannot make a work folder {work}: {said or f'exit {made.returncode}'}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's or a user's ``kill``) handled as Ctrl-C: the clean-up after KeyboardInterrupt runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def tool_command(argv: list[str], work: str) -> str:
    """The sh line that runs the tool: its output to ``tool.log`` on the device (the tool's own,
    not the transport's), its pid to ``tool.pid`` (to stop it on Ctrl-C), then ``rc=N``."""
    log, pid = shlex.quote(f"{work}/{TOOL_LOG}"), shlex.quote(f"{work}/{TOOL_PID}")
    return f'{shlex.join(argv)} > {log} 2>&1 & echo $! > {pid}; wait $!; echo "rc=$?"'


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (then raise): a clean-up or a record is never left half-done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {number: signal.signal(number, lambda got, frame: caught.append(got))
                for number in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if caught:
        raise KeyboardInterrupt("terminated (SIGTERM)" if signal.SIGTERM in caught else "")


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
