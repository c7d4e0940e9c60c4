"""Service fixtures of the provider and transport tests: Son of Grid Engine (`sge`), Slurm's PBS
wrappers in front of the Slurm test cluster (`pbs`), and a private sshd on 127.0.0.1 (`ssh`).

Each runs its own script under tests/services (installing Debian packages when missing); when a
service cannot start, its tests fail under CI=true and skip elsewhere (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import SlurmCluster, descendants, free_port_range, run_service_script, stop_service

SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
PBS_PREFIX = "/opt/slurm-torque"


@dataclass(frozen=True)
class SgeCluster:
    """A running single-host SGE; ``env`` selects it for qsub/qstat/qacct/qdel."""

    env: dict[str, str]

    def qstat(self) -> str:
        return subprocess.run(
            ["qstat"], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30, check=True
        ).stdout

    def delete_all_jobs(self, timeout: float = 60) -> None:
        """``qdel -f`` every job and wait until qstat lists none: one failed test leaves no job
        behind to hold the next test's slots."""
        env = {**os.environ, **self.env}
        subprocess.run(["qdel", "-f", "-u", "*"], env=env, capture_output=True, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["qstat", "-u", "*"], env=env, capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and not out.stdout.strip():
                return
            time.sleep(0.5)


@pytest.fixture(scope="session")
def sge_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SgeCluster]:
    """Son of Grid Engine 8.1.9 from Debian: qmaster + execd on this host, 4 slots in all.q.

    sge-up.sh records the daemons it started in ``state``; sge-down.sh deletes every job, stops
    those daemons and wipes the execd spool, also when the start itself failed."""
    state = {"STATE": str(tmp_path_factory.mktemp("sge-state")), "SLOTS": "4"}
    try:
        run_service_script("sge-up.sh", state)
        yield SgeCluster(dict(SGE_ENV))
    finally:
        stop_service("sge-down.sh", state)


@dataclass(frozen=True)
class PbsCommands:
    """Slurm's PBS wrappers (qsub/qstat/qdel) under ``bin_dir``, talking to ``cluster``."""

    bin_dir: str
    cluster: SlurmCluster

    @property
    def env(self) -> dict[str, str]:
        return self.cluster.env


@pytest.fixture(scope="session")
def pbs_commands(slurm_cluster: SlurmCluster) -> PbsCommands:
    """The wrappers unpacked to /opt/slurm-torque (they coexist with gridengine-client)."""
    run_service_script("pbs-wrappers.sh", {"PREFIX": PBS_PREFIX})
    return PbsCommands(f"{PBS_PREFIX}/usr/bin", slurm_cluster)


@dataclass(frozen=True)
class Sshd:
    """A private OpenSSH server: root@127.0.0.1:port with ``key``, host key in ``known_hosts``."""

    port: int
    key: str
    known_hosts: str
    dir: Path

    @property
    def pid(self) -> int:
        return int((self.dir / "sshd.pid").read_text().strip())

    def transport(self, **over: object) -> dict[str, object]:
        """The `[sites.transport]` table that reaches this server."""
        return {
            "kind": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "key_file": self.key,
            "known_hosts": self.known_hosts,
            "connect_timeout": 5,
            **over,
        }

    def stop(self, *, sessions: bool = False) -> None:
        """Stop the listener; sessions already open live on in their own sshd processes unless
        ``sessions`` (the fixture's teardown) ends them too."""
        pid = self.pid
        below = descendants(pid) if sessions else []
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        for child in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)

    def start(self) -> None:
        run_service_script("sshd-up.sh", {"DIR": str(self.dir), "PORT": str(self.port)})


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """sshd on 127.0.0.1 with a generated host key and client key (Debian openssh-server)."""
    base = tmp_path_factory.mktemp("sshd")
    server = Sshd(free_port_range(1), str(base / "id_ed25519"), str(base / "known_hosts"), base)
    try:
        server.start()
        yield server
    finally:  # also when the start failed after sshd daemonized
        if (base / "sshd.pid").exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                server.stop(sessions=True)


# -- a remote HTCondor pool (with a startd) for the htcondor provider --------------------------
#: on top of the personal pool's base configuration: a named schedd and a startd that runs anything
REMOTE_POOL_EXTRA = """
SCHEDD_NAME = remote-schedd
UPDATE_INTERVAL = 2
NUM_CPUS = 4
START = True
SUSPEND = False
PREEMPT = False
KILL = False
"""


@dataclass(frozen=True)
class RemotePool:
    """A personal pool with a startd; ``token_dir`` holds an IDTOKEN for nobody@localhost (schedds
    refuse jobs owned by root, so the factory authenticates as nobody)."""

    collector: str
    schedd: str
    token_dir: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def remote_pool() -> Iterator[RemotePool]:
    from tests.conftest import personal_pool

    daemons = "MASTER COLLECTOR NEGOTIATOR SCHEDD STARTD"
    with personal_pool("remote HTCondor pool", daemons, REMOTE_POOL_EXTRA, ("-schedd", "-startd")) as (base, port, env):
        token_dir = base / "client-tokens"
        token_dir.mkdir(mode=0o700)
        token = subprocess.run(
            ["condor_token_create", "-identity", "nobody@localhost", "-lifetime", "7200"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        (token_dir / "nobody").write_text(token + "\n")
        (token_dir / "nobody").chmod(0o600)
        yield RemotePool(f"127.0.0.1:{port}", "remote-schedd", token_dir, env)


@pytest.fixture
def remote_pool_client(remote_pool: RemotePool, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemotePool]:
    """This process's HTCondor client authenticates with the nobody token, for one test only."""
    import htcondor2

    monkeypatch.setenv("_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS", "IDTOKENS")
    monkeypatch.setenv("_CONDOR_SEC_TOKEN_DIRECTORY", str(remote_pool.token_dir))
    htcondor2.reload_config()
    try:
        yield remote_pool
    finally:
        monkeypatch.undo()
        htcondor2.reload_config()
