"""A throwaway single-node Slurm cluster on this machine, for the Slurm tests.

``start_slurm(root)`` starts ``munged``, ``slurmctld`` and ``slurmd`` (as root, each on its own
socket / free ports, state, spool and logs under ``root``) with a minimal ``slurm.conf``: one node
with this machine's CPUs and memory (as ``slurmd -C`` detects them), one default partition,
``proctrack/linuxproc``, ``task/none``, ``select/cons_tres`` and no accounting (like many small
clusters, so ``sacct`` fails there). Clients find it through ``SLURM_CONF``. It raises
``SlurmUnavailable`` with the reason when that is impossible (not root, packages missing, not up
within the deadline); the fixture in ``conftest.py`` turns that into a skip. CI (``.ci/run``)
installs the Debian packages ``slurmctld slurmd slurm-client munge`` where missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "scontrol")
PARTITION = "debug"


class SlurmUnavailable(RuntimeError):
    """Why no cluster could be started (the tests skip with it)."""


@dataclass
class SlurmCluster:
    conf: Path            # slurm.conf: export SLURM_CONF=<conf> for clients
    root: Path
    node: str
    cpus: int
    memory_mb: int
    partition: str = PARTITION

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env(), capture_output=True, text=True, timeout=timeout, check=check)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.root.glob("*.log")))


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _node_line() -> tuple[str, int, int]:
    """(NodeName=... line, CPUs, RealMemory MB) from ``slurmd -C``: what slurmd will find on this host."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=60).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("NodeName=")), None)
    if line is None:
        raise SlurmUnavailable(f"`slurmd -C` did not describe this node: {out.strip()[:200]!r}")
    fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    return line, int(fields["CPUs"]), int(fields["RealMemory"])


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting slurmctld/slurmd needs root (the tests run as an ordinary user)")
    missing = [p for p in (*DAEMONS, *CLIENTS) if shutil.which(p) is None
               and not os.path.exists(f"/usr/sbin/{p}")]
    if missing:
        raise SlurmUnavailable(f"Slurm/munge programs missing: {', '.join(missing)} "
                               "(apt-get install slurmctld slurmd slurm-client munge)")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a daemon whose parent (init) does not reap it lingers as a zombie: that is stopped too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _stop(pid_files: list[Path]) -> None:
    """SIGTERM the daemons we started (by the pids they wrote), SIGKILL what is left after 10 s."""
    pids = [pid for pid in (_pid(p) for p in pid_files) if pid is not None]
    for pid in reversed(pids):  # slurmd, slurmctld, munged: the reverse of starting
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def start_slurm(root: Path, deadline_s: float = 60.0) -> Iterator[SlurmCluster]:
    """Start the cluster under ``root``; stop every daemon it started on exit.

    Example::

        with start_slurm(Path(tempfile.mkdtemp())) as cluster:
            cluster.run("sbatch", "--wrap", "hostname")
    """
    _check_prerequisites()
    sbin = lambda name: shutil.which(name) or f"/usr/sbin/{name}"  # noqa: E731
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    for sub in ("state", "spool", "munge"):
        (root / sub).mkdir(exist_ok=True)
    os.chmod(root / "munge", 0o700)
    node_line, cpus, memory = _node_line()
    node = node_line.split()[0].split("=", 1)[1]
    ctld_port, slurmd_port = _free_ports(2)
    munge_socket = root / "munge" / "munge.socket"
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        f"ClusterName=dasmtest{ctld_port}",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=60",
        "InactiveLimit=0",
        "MinJobAge=600",
        "KillWait=5",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    cluster = SlurmCluster(conf, root, node, cpus, memory)
    env = cluster.env()
    pid_files = [root / "munged.pid", root / "slurmctld.pid", root / "slurmd.pid"]
    try:
        commands = [
            [sbin("munged"), "--force", f"--key-file={key}", f"--socket={munge_socket}",
             f"--pid-file={pid_files[0]}", f"--log-file={root / 'munged.log'}",
             f"--seed-file={root / 'munge' / 'munged.seed'}"],
            [sbin("slurmctld"), "-f", str(conf), "-i"],   # -i: ignore (absent) saved state
            [sbin("slurmd"), "-f", str(conf), "-N", node],
        ]
        for cmd in commands:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                raise SlurmUnavailable(f"{Path(cmd[0]).name} did not start: "
                                       f"{(proc.stderr or proc.stdout).strip()[:300]}")
        start = time.monotonic()
        state = ""
        while time.monotonic() - start < deadline_s:
            out = cluster.run("sinfo", "-h", "-N", "-o", "%t", check=False, timeout=15)
            state = (out.stdout or out.stderr).strip()
            if out.returncode == 0 and state in ("idle", "mix", "alloc"):
                break
            time.sleep(1.0)
        else:
            raise SlurmUnavailable(f"the single-node Slurm did not come up within {deadline_s:.0f}s "
                                   f"(node state {state!r})\n{cluster.logs()}")
        yield cluster
    finally:
        _stop(pid_files)
