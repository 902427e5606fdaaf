"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd in a temporary folder, by pid."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "srun")


def missing_tools() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_conf(root: Path, socket_path: Path, max_array_size: int) -> Path:
    user = pwd.getpwuid(os.getuid()).pw_name
    conf = root / "slurm.conf"
    conf.write_text(f"""ClusterName=benchtest
SlurmctldHost=localhost
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=1
MinJobAge=3600
KillWait=5
MaxArraySize={max_array_size}
NodeName=localhost NodeHostname={socket.gethostname()} CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=30 State=UP
""")
    return conf


@dataclass
class Cluster:
    """A running test cluster: the clients' environment and the folder of its logs."""

    env: dict[str, str]
    root: Path

    def logs(self, tail: int = 3000) -> str:
        """The end of every daemon's log, for a failing test's message."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "daemons.log", "munge/munged.log"):
            path = self.root / name
            text = path.read_text(errors="replace")[-tail:] if path.is_file() else "(none)"
            parts.append(f"--- {path}\n{text}")
        return "\n".join(parts)


def daemon_env(conf: Path) -> dict[str, str]:
    """What the daemons need and nothing from the test process (its PATH, BENCH_*, PL_* or SLURM_* values)."""
    home = pwd.getpwuid(os.getuid()).pw_dir
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": home, "LANG": "C.UTF-8", "SLURM_CONF": str(conf)}


@contextmanager
def one_node_cluster(root: Path, max_array_size: int = 2) -> Iterator[Cluster]:
    """Start the daemons, each in a session of its own, wait for the node to be idle; stop them by pid."""
    for name in ("state", "spool", "munge"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o600)
    sock = root / "munge" / "munge.sock"
    conf = write_conf(root, sock, max_array_size)
    env = daemon_env(conf)
    # setsid: a Ctrl-C or a signal to the test's process group never reaches the daemons.
    start = {"env": env, "start_new_session": True, "stdin": subprocess.DEVNULL}
    procs: list[subprocess.Popen] = []
    logs = open(root / "daemons.log", "wb")
    try:
        procs.append(subprocess.Popen(["munged", "-F", "-f", f"--key-file={key}", f"--socket={sock}",
                                       f"--pid-file={root}/munge/munged.pid", f"--seed-file={root}/munge/seed",
                                       f"--log-file={root}/munge/munged.log"], stdout=logs, stderr=logs, **start))
        _wait(lambda: sock.exists(), "munged's socket")
        procs.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], stdout=logs, stderr=logs, **start))
        time.sleep(1)
        procs.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", "localhost"], stdout=logs,
                                      stderr=logs, **start))

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            return out.strip() == "idle"

        _wait(idle, "the node to be idle", root)
        yield Cluster(env, root)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        logs.close()


def _wait(ready, what: str, root: Path | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            log = (root / "slurmctld.log").read_text()[-2000:] if root and (root / "slurmctld.log").exists() else ""
            raise RuntimeError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.5)
