"""How files and commands reach a target: ``local``, ``adb``/``adb:SERIAL``, ``ssh://user@host[:port]``.

Every remote command is an argument list joined with ``shlex.join`` for the device's shell (never a
user string spliced into a shell on the host). ssh is the user's own: keys, agent, ``~/.ssh/config``
and ``known_hosts``, with ``BatchMode`` (no password prompt) and host-key checking left on; an
unknown host key is refused with the command that would add it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backbones.errors import UserError

CONNECT_TIMEOUT_S = 10


class NoSpaceLeft(UserError):
    """A push the device's file system had no room for: the folder and what the file needs there."""

    def __init__(self, address: str, local: Path, remote: str) -> None:
        folder = remote.rsplit("/", 1)[0] or "/"
        super().__init__(f"--device {address}: no space left on the device in {folder}: {Path(local).name} needs "
                         f"{human_bytes(Path(local).stat().st_size)}")  # fmt: skip


def human_bytes(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def no_space(message: str) -> bool:
    """adb push, cat > file and scp all end their refusal of a full file system with ENOSPC's text."""
    return "No space left on device" in message


class Transport:
    """Run argv on the target, copy files to and from it."""

    kind: str = ""
    address: str = ""
    default_root: str = "/tmp"

    def check(self) -> None:
        """Raise a one-line UserError when the target cannot be reached."""

    def shell(self, argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def push(self, local: Path, remote: str) -> None:
        raise NotImplementedError

    def pull(self, remote: str, local: Path) -> None:
        raise NotImplementedError

    def script(self, text: str, timeout: float | None = 60) -> str:
        """Run a POSIX sh script on the target; its stdout."""
        return self.shell(["sh", "-c", text], timeout=timeout).stdout


def _run(argv: list[str], timeout: float | None, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError(f"--device: {what} did not answer within {timeout:g} s") from None


# --------------------------------------------------------------------------------------------
# local
# --------------------------------------------------------------------------------------------
class LocalTransport(Transport):
    kind, address = "local", "localhost"

    def shell(self, argv, timeout=None):
        return _run(list(argv), timeout, "the local command")

    def push(self, local, remote):
        shutil.copyfile(local, remote)

    def pull(self, remote, local):
        shutil.copyfile(remote, local)


# --------------------------------------------------------------------------------------------
# ssh
# --------------------------------------------------------------------------------------------
SSH_URL = re.compile(r"^ssh://(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d+))?/?$")


def check_name(what: str, value: str, target: str) -> None:
    """A user, host or serial handed to ssh or adb: never one that reads as an option (``-oProxyCommand=...``
    would run a command here) or holds whitespace or control characters."""
    if value.startswith("-") or any(c.isspace() or not c.isprintable() for c in value):
        raise UserError(f"--device {target!r}: the {what} {value!r} begins with '-' or holds whitespace; refused "
                        "(it would reach ssh/adb as an option)")  # fmt: skip


class SshTransport(Transport):
    kind = "ssh"

    def __init__(self, url: str, config: str | None = None) -> None:
        match = SSH_URL.match(url)
        if not match:
            raise UserError(f"--device: {url!r} is not ssh://user@host[:port]")
        for what in ("user", "host"):
            if match[what] is not None:
                check_name(what, match[what], url)
        self.user, self.host, self.port = match["user"], match["host"], match["port"]
        self.address = url
        self.destination = f"{self.user}@{self.host}" if self.user else self.host
        self.config = config or os.environ.get("BENCH_SSH_CONFIG")
        if self.config and not Path(self.config).is_file():
            raise UserError(f"--ssh-config: {self.config} is not a file")
        if shutil.which("ssh") is None:
            raise UserError("--device ssh://: no ssh on PATH (install openssh-client)")

    def options(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "StrictHostKeyChecking=yes"]
        return (["-F", self.config] if self.config else []) + opts

    def _checked(self, result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
        if result.returncode != 255:
            return result
        err = result.stderr.strip()
        port = f" -p {self.port}" if self.port else ""
        if "Host key verification failed" in err or "No ED25519 host key is known" in err or "host key is known" in err:
            raise UserError(
                f"--device {self.address}: the host key of {self.host} is not in known_hosts; check its fingerprint, "
                f"then add it: ssh-keyscan{port} {self.host} >> ~/.ssh/known_hosts"
            )
        if "Permission denied" in err:
            raise UserError(f"--device {self.address}: key refused (BatchMode, no password prompt): {err.splitlines()[-1]}")
        last = err.splitlines()[-1] if err else "exit 255"
        raise UserError(f"--device {self.address}: {what} failed: {last}")

    def check(self) -> None:
        result = _run(["ssh", *self.options(), *(["-p", self.port] if self.port else []), "--", self.destination, "true"],
                      CONNECT_TIMEOUT_S + 20, f"ssh {self.host}")  # fmt: skip
        self._checked(result, "ssh")

    def shell(self, argv, timeout=None):
        command = ["ssh", *self.options(), *(["-p", self.port] if self.port else []), "--", self.destination,
                   shlex.join(argv)]  # fmt: skip
        return self._checked(_run(command, timeout, f"ssh {self.host}"), "ssh")

    def _stream(self, command: str, stdin, stdout, what: str, pushing: tuple[Path, str] | None = None) -> None:
        """Copy through ssh's own channel (``cat``): no sftp subsystem or scp needed on the board."""
        argv = ["ssh", *self.options(), *(["-p", self.port] if self.port else []), "--", self.destination, command]
        try:
            result = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=600)
        except subprocess.TimeoutExpired:
            raise UserError(f"--device {self.address}: {what} did not finish within 600 s") from None
        err = result.stderr.decode(errors="replace")
        self._checked(subprocess.CompletedProcess(argv, result.returncode, "", err), "ssh")
        if result.returncode:
            if pushing is not None and no_space(err):
                raise NoSpaceLeft(self.address, *pushing)
            raise UserError(f"--device {self.address}: {what} failed: {err.strip()[:200] or f'exit {result.returncode}'}")

    def push(self, local, remote):
        with open(local, "rb") as handle:
            self._stream(f"cat > {shlex.quote(remote)}", handle, subprocess.DEVNULL, f"copy {Path(local).name} to {remote}",
                         pushing=(Path(local), remote))  # fmt: skip

    def pull(self, remote, local):
        with open(local, "wb") as handle:
            self._stream(f"cat {shlex.quote(remote)}", subprocess.DEVNULL, handle, f"copy {remote} back")


# --------------------------------------------------------------------------------------------
# adb
# --------------------------------------------------------------------------------------------
ADB_HINT = "install Android platform-tools and put adb on PATH (https://developer.android.com/tools/releases/platform-tools)"


def adb_devices(output: str) -> list[tuple[str, str]]:
    """``adb devices`` -> [(serial, state)]; state is device, unauthorized, offline, ..."""
    pairs = []
    for line in output.replace("\r", "").splitlines():
        if line.startswith("List of devices") or line.startswith("*") or not line.strip():
            continue
        parts = line.split()
        if len(parts) >= 2:
            pairs.append((parts[0], parts[1]))
    return pairs


class AdbTransport(Transport):
    kind = "adb"
    default_root = "/data/local/tmp"

    def __init__(self, serial: str | None) -> None:
        if serial is not None:
            check_name("serial", serial, f"adb:{serial}")
        self.serial = serial
        self.adb = shutil.which("adb")
        if self.adb is None:
            raise UserError(f"--device adb: no adb on PATH; {ADB_HINT}")

    def check(self) -> None:
        result = _run([self.adb, "devices"], 30, "adb devices")
        devices = adb_devices(result.stdout)
        if self.serial is None:
            if not devices:
                raise UserError("--device adb: no device attached (adb devices lists none; enable USB debugging)")
            if len(devices) > 1:
                raise UserError(f"--device adb: {len(devices)} devices attached ({', '.join(s for s, _ in devices)}); "
                                "name one with --device adb:SERIAL")  # fmt: skip
            self.serial = devices[0][0]
        states = dict(devices)
        if self.serial not in states:
            raise UserError(f"--device adb:{self.serial}: no such device (adb devices lists {', '.join(states) or 'none'})")
        state = states[self.serial]
        if state == "unauthorized":
            raise UserError(f"--device adb:{self.serial}: unauthorized; accept the USB debugging prompt on the phone")
        if state != "device":
            raise UserError(f"--device adb:{self.serial}: the device is {state}; reconnect it (adb reconnect)")
        self.address = f"adb:{self.serial}"

    def base(self) -> list[str]:
        return [self.adb, "-s", str(self.serial)]

    def shell(self, argv, timeout=None):
        result = _run([*self.base(), "shell", shlex.join(argv)], timeout, f"adb -s {self.serial} shell")
        # adb shell ends lines in \r on old devices.
        return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.replace("\r\n", "\n"),
                                           result.stderr)  # fmt: skip

    def _copy(self, verb: str, source: str, target: str) -> None:
        result = _run([*self.base(), verb, source, target], 600, f"adb {verb}")
        if result.returncode:
            message = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["failed"]
            if verb == "push" and no_space(message[0]):
                raise NoSpaceLeft(self.address, Path(source), target)
            if no_space(message[0]):
                raise UserError(f"--device {self.address}: no space left on this machine for {target}")
            raise UserError(f"--device {self.address}: adb {verb} {source} failed: {message[0][:200]}")

    def push(self, local, remote):
        self._copy("push", str(local), remote)

    def pull(self, remote, local):
        self._copy("pull", remote, str(local))


@dataclass(frozen=True)
class TargetSpec:
    kind: str
    serial: str | None = None
    url: str | None = None


def parse_target(text: str) -> TargetSpec:
    if text == "local":
        return TargetSpec("local")
    if text == "adb":
        return TargetSpec("adb")
    if text.startswith("adb:") and len(text) > 4:
        check_name("serial", text[4:], text)
        return TargetSpec("adb", serial=text[4:])
    if text.startswith("ssh://") and (match := SSH_URL.match(text)):
        for what in ("user", "host"):
            if match[what] is not None:
                check_name(what, match[what], text)
        return TargetSpec("ssh", url=text)
    raise UserError(f"--device: {text!r} is not one of adb, adb:SERIAL, ssh://user@host[:port], local")


def open_transport(text: str, ssh_config: str | None = None) -> Transport:
    spec = parse_target(text)
    if spec.kind == "local":
        transport: Transport = LocalTransport()
    elif spec.kind == "adb":
        transport = AdbTransport(spec.serial)
    else:
        transport = SshTransport(str(spec.url), ssh_config)
    transport.check()
    return transport
