"""Service fixtures of the provider and transport tests: Son of Grid Engine (`sge`), Slurm's PBS
wrappers in front of the Slurm test cluster (`pbs`), and a private sshd on 127.0.0.1 (`ssh`).

Each runs its own script under tests/services (installing Debian packages when missing); when a
service cannot start, its tests fail under CI=true and skip elsewhere (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import SERVICES, SlurmCluster, free_port_range, run_service_script

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


@pytest.fixture(scope="session")
def sge_cluster() -> Iterator[SgeCluster]:
    """Son of Grid Engine 8.1.9 from Debian: qmaster + execd on this host, 4 slots in all.q."""
    run_service_script("sge-up.sh", {"SLOTS": "4"})
    try:
        yield SgeCluster(dict(SGE_ENV))
    finally:
        subprocess.run(["bash", str(SERVICES / "sge-down.sh")], capture_output=True, timeout=60)


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

    def stop(self) -> None:
        """Stop the listener (sessions already open live on in their own sshd processes)."""
        pid = self.pid
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def start(self) -> None:
        run_service_script("sshd-up.sh", {"DIR": str(self.dir), "PORT": str(self.port)})


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """sshd on 127.0.0.1 with a generated host key and client key (Debian openssh-server)."""
    base = tmp_path_factory.mktemp("sshd")
    server = Sshd(free_port_range(1), str(base / "id_ed25519"), str(base / "known_hosts"), base)
    server.start()
    try:
        yield server
    finally:
        if (base / "sshd.pid").exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                server.stop()


# -- a remote HTCondor pool (with a startd) for the htcondor provider --------------------------
REMOTE_POOL_CONFIG = """
RELEASE_DIR = {prefix}
LOCAL_DIR = {local}
LOG = $(LOCAL_DIR)/log
SPOOL = $(LOCAL_DIR)/spool
EXECUTE = $(LOCAL_DIR)/execute
LOCK = $(LOCAL_DIR)/lock
RUN = $(LOCAL_DIR)/run
SEC_PASSWORD_DIRECTORY = $(LOCAL_DIR)/passwords.d
SEC_TOKEN_SYSTEM_DIRECTORY = $(LOCAL_DIR)/tokens.d
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:{port}
NETWORK_INTERFACE = 127.0.0.1
USE_SHARED_PORT = False
CONDOR_IDS = 0.0
DAEMON_LIST = MASTER COLLECTOR NEGOTIATOR SCHEDD STARTD
TRUST_DOMAIN = localhost
UID_DOMAIN = localhost
SCHEDD_NAME = remote-schedd
SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS
SEC_CLIENT_AUTHENTICATION_METHODS = FS, IDTOKENS
ALLOW_READ = *
ALLOW_WRITE = *@localhost
ALLOW_DAEMON = root@localhost, condor@family
ALLOW_NEGOTIATOR = root@localhost, condor@family
ALLOW_ADMINISTRATOR = root@localhost
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_CYCLE_DELAY = 1
NEGOTIATOR_MIN_INTERVAL = 1
SCHEDD_INTERVAL = 2
SCHEDD_MIN_INTERVAL = 1
UPDATE_INTERVAL = 2
BASE_CGROUP =
USE_PID_NAMESPACES = False
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
    from tests.conftest import condor_prefix, service_unavailable

    prefix = condor_prefix()
    if prefix is None:
        pytest.skip("no HTCondor binaries (condor_master on PATH, $CAMPUS_FACTORY_CONDOR_PREFIX or /opt/condor)")
    if os.geteuid() != 0:
        service_unavailable("remote HTCondor pool", "the tests start it as root")
    base = Path(tempfile.mkdtemp(prefix="cf-rpool-", dir="/tmp"))
    base.chmod(0o755)
    local = base / "local"
    for d in ("log", "spool", "execute", "lock", "run", "passwords.d", "tokens.d"):
        (local / d).mkdir(parents=True, exist_ok=True)
    port = free_port_range(1)
    (base / "condor_config").write_text(REMOTE_POOL_CONFIG.format(prefix=prefix, local=local, port=port))
    env = {"CONDOR_CONFIG": str(base / "condor_config"), "PATH": f"{prefix}/bin:{prefix}/sbin:{os.environ['PATH']}"}
    master = subprocess.Popen(
        [str(prefix / "sbin" / "condor_master"), "-f"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def status(*args: str) -> str:
        out = subprocess.run(
            ["condor_status", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=20
        )
        return out.stdout if out.returncode == 0 else ""

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if status("-schedd", "-af", "Name").strip() and status("-startd", "-af", "Name").strip():
                break
            time.sleep(0.5)
        else:
            service_unavailable("remote HTCondor pool", (local / "log" / "MasterLog").read_text()[-3000:])
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
    finally:
        master.terminate()  # the master stops the daemons it started (each in a session of its own)
        try:
            master.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(master.pid, signal.SIGKILL)
            master.wait()
        shutil.rmtree(base, ignore_errors=True)


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
