"""A throw-away Slurm cluster on this machine (munged + slurmctld + slurmd), for the Slurm batch test.

Everything lives in a fresh temporary folder: the configuration, munge key and
socket, state, spool, logs and pid files; the ports are free ones picked at
start-up. Nothing of a system Slurm or munge is used or touched, so two test
sessions (or a leftover controller of a killed one) never collide. The
cluster avoids cgroups (``proctrack/linuxproc``, ``task/none``, no
accounting), which fail inside containers.

The fixture skips, with the reason, when the Debian packages ``slurm-wlm``
and ``munge`` are not installed, when we are not root (slurmd must start
jobs as the submitting user), or when the daemons do not come up in time.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: binaries the cluster needs (Debian: slurm-wlm, munge)
BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel", "scontrol")
#: where to look for them (the daemons are in sbin, often not on a user's PATH)
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
#: seconds allowed for the daemons to come up (node idle in sinfo)
START_TIMEOUT_S = 30.0


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free now (no fixed ports: parallel sessions never collide)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (a killed session leaves no daemons)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)


#: errors a healthy start logs too: optional MPI plugins, the cold start's missing state, no mail program
HARMLESS = ("pmix", "mpi:", "state file", "backup state", "mailprog")


def _is_error(line: str) -> bool:
    """A log line worth showing in a skip reason."""
    low = line.lower()
    return ("error" in low or "fatal" in low) and not any(h in low for h in HARMLESS)


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


def _slurm_conf(d: Path, host: str, ports: list[int]) -> str:
    cpus = os.cpu_count() or 1
    mem_mb = max(256, int(_mem_total_mb() * 0.8))  # below the real memory: slurmd would drain the node
    return f"""\
ClusterName=plscopetest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """munged, slurmctld and slurmd in the foreground, as children of the test process."""

    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": SEARCH_PATH}
        self.procs: dict[str, subprocess.Popen] = {}

    # -- start -------------------------------------------------------------
    def start(self) -> None:
        d = self.root
        for sub in ("state", "spool"):
            (d / sub).mkdir(mode=0o700)
        self.conf.write_text(_slurm_conf(d, self.host, _free_ports(2)))
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))  # what mungekey --create writes: random bytes
        key.chmod(0o600)
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",  # root, and a socket below the world-writable /tmp
                f"--socket={d}/munge.socket",
                f"--key-file={key}",
                f"--pid-file={d}/munged.pid",
                f"--log-file={d}/munged.log",
                f"--seed-file={d}/munged.seed",
            ],
        )
        self._wait(lambda: (d / "munge.socket").exists(), "munged did not create its socket", 10)
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.host])
        self._wait(self._node_idle, "the node did not become idle in sinfo", START_TIMEOUT_S)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.root / f"{name}.out", "wb") as out:
            self.procs[name] = subprocess.Popen(
                [shutil.which(cmd[0], path=SEARCH_PATH) or cmd[0], *cmd[1:]],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the test, whose teardown stops the daemons
                preexec_fn=_die_with_parent,
            )

    def _wait(self, ready, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited ({self.procs[dead[0]].returncode}): {self.log_tail()}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{what} within {timeout_s:.0f} s: {self.log_tail()}")

    def _node_idle(self) -> bool:
        res = self.run(["sinfo", "--noheader", "--Node", "--format=%t"], check=False)
        return res.returncode == 0 and res.stdout.split() == ["idle"]

    # -- use ---------------------------------------------------------------
    def run(self, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        cmd = [shutil.which(cmd[0], path=SEARCH_PATH) or cmd[0], *cmd[1:]]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=20, check=check)

    def jobs(self) -> list[str]:
        """Job ids still known to the controller (pending, running or completing)."""
        res = self.run(["squeue", "--noheader", "--format=%i %T"], check=False)
        return res.stdout.split()[::2] if res.returncode == 0 else []

    def log_tail(self, n: int = 6) -> str:
        lines = []
        for name in ("munged.log", "munged.out", "slurmctld.out", "slurmd.out"):  # -D: the logs, and more
            with contextlib.suppress(OSError):
                tail = (self.root / name).read_text(errors="replace").strip().splitlines()
                lines += [f"[{name}] {t}" for t in tail if _is_error(t)]
        return " | ".join(lines[-n:]) or "(nothing in the logs)"

    # -- stop --------------------------------------------------------------
    def stop(self) -> None:
        """Cancel every job, shut the daemons down (killed if they linger), remove the folder."""
        with contextlib.suppress(Exception):
            if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
                self.run(["scancel", "--full", "--user=root"], check=False)
                deadline = time.monotonic() + 15
                while self.jobs() and time.monotonic() < deadline:
                    time.sleep(0.3)
                self.run(["scontrol", "shutdown"], check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            if name != "munged":  # scontrol shutdown stops the Slurm daemons, munged needs a signal
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


def _why_not() -> str | None:
    """Why a local Slurm cluster cannot be started here, or None."""
    missing = [b for b in BINARIES if shutil.which(b, path=SEARCH_PATH) is None]
    if missing:
        return f"Slurm/munge not installed ({', '.join(missing)} missing; Debian: apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd starts jobs as the submitting user)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[LocalSlurm]:
    """A running one-node Slurm cluster; ``SLURM_CONF`` in its ``env`` points client commands at it."""
    why = _why_not()
    if why:
        pytest.skip(why)
    # a short path: the munge socket path must fit in a sockaddr_un (108 bytes)
    cluster = LocalSlurm(Path(tempfile.mkdtemp(prefix="plscope-slurm-")))
    try:
        cluster.start()
    except Exception as exc:
        cluster.stop()
        pytest.skip(f"the local Slurm cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
