"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd in a temporary folder, by pid."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "srun")


def missing_tools() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_conf(root: Path, socket_path: Path, max_array_size: int) -> Path:
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
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


@contextmanager
def one_node_cluster(root: Path, max_array_size: int = 2) -> Iterator[dict[str, str]]:
    """Start the daemons, wait for the node to be idle, yield the client environment; stop them by pid."""
    for name in ("state", "spool", "munge"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o600)
    sock = root / "munge" / "munge.sock"
    conf = write_conf(root, sock, max_array_size)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []
    logs = open(root / "daemons.log", "wb")
    try:
        procs.append(subprocess.Popen(["munged", "-F", "-f", f"--key-file={key}", f"--socket={sock}",
                                       f"--pid-file={root}/munge/munged.pid", f"--seed-file={root}/munge/seed",
                                       f"--log-file={root}/munge/munged.log"], stdout=logs, stderr=logs))
        _wait(lambda: sock.exists(), "munged's socket")
        procs.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], env=env, stdout=logs, stderr=logs))
        time.sleep(1)
        procs.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", "localhost"], env=env, stdout=logs,
                                      stderr=logs))

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            return out.strip() == "idle"

        _wait(idle, "the node to be idle", root)
        yield env
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()


def _wait(ready, what: str, root: Path | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            log = (root / "slurmctld.log").read_text()[-2000:] if root and (root / "slurmctld.log").exists() else ""
            raise RuntimeError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.5)
