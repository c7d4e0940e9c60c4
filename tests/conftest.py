"""Shared fixtures. Service fixtures start the real thing (as root, installing Debian packages
when missing). When a service cannot start, its tests fail under CI=true and skip elsewhere;
only `htcondor` tests may skip in CI, when no HTCondor binaries are found."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# a busy machine must not turn a property test red: no per-example deadline, no "too slow" check
# (the searches stay the same; only wall-clock judgements are dropped)
settings.register_profile("campus", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("campus")

SERVICES = Path(__file__).parent / "services"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_unavailable(what: str, detail: str = "") -> None:
    """Fail under CI, skip elsewhere: a marked test whose service cannot start."""
    text = f"{what} could not be started" + (f": {detail[-3000:]}" if detail else "")
    if IN_CI:
        pytest.fail(text, pytrace=False)
    pytest.skip(text)


def run_service_script(script: str, env: dict[str, str], timeout: float = 600) -> str:
    """Run one of tests/services/*.sh; returns its output or reports the service unavailable."""
    if os.geteuid() != 0:
        service_unavailable(script, "the service scripts must run as root")
    try:
        proc = subprocess.run(
            ["bash", str(SERVICES / script)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        service_unavailable(script, f"timed out after {timeout} s: {exc.stdout!r} {exc.stderr!r}")
    if proc.returncode != 0:
        service_unavailable(script, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@dataclass(frozen=True)
class SlurmCluster:
    name: str
    conf: str
    base: Path
    nodes: int
    node_cpus: int

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": self.conf}

    def squeue(self) -> list[str]:
        out = subprocess.run(
            ["squeue", "--me", "-h", "-r", "-o", "%i|%T|%j"],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return [line for line in out.splitlines() if line.strip()]

    def cancel_all_jobs(self, timeout: float = 60) -> None:
        """Cancel every job of the cluster and wait until none is listed (a failed test's pilots
        would hold the next test's nodes)."""
        env = {**os.environ, **self.env}
        subprocess.run(["scancel", "--me"], env=env, capture_output=True, timeout=30)
        deadline = time.monotonic() + timeout
        while self.squeue() and time.monotonic() < deadline:
            time.sleep(0.5)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A real two-node Slurm cluster on this host (Debian's slurmctld/slurmd, its own munged)."""
    base = tmp_path_factory.mktemp("slurm")
    env = {
        "CLUSTER": "cftest",
        "PORT_BASE": os.environ.get("CF_TEST_SLURM_PORT") or str(free_port_range(3)),
        "NNODES": "2",
        "NODE_CPUS": "4",
        "NODE_MEM": "4000",
        "MIN_JOB_AGE": "60",
        "BASE": str(base),
    }
    try:
        run_service_script("slurm-up.sh", env)
        yield SlurmCluster("cftest", str(base / "etc" / "slurm.conf"), base, 2, 4)
    finally:  # also when the start failed half-way: slurm-down.sh cancels the jobs, stops it all
        stop_service("slurm-down.sh", env)


def stop_service(script: str, env: dict[str, str], timeout: float = 300) -> None:
    """Run a tests/services/*-down.sh; a failure to stop is reported on stderr, never hidden."""
    try:
        proc = subprocess.run(
            ["bash", str(SERVICES / script)], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        print(f"\n{script} did not finish within {timeout} s", file=sys.stderr)
        return
    if proc.returncode != 0 or "killed" in proc.stdout:
        print(f"\n{script} (exit {proc.returncode}): {proc.stdout}{proc.stderr}", file=sys.stderr)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...), read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def free_port_range(n: int, lo: int = 20000, hi: int = 40000) -> int:
    """A base port such that base .. base+n-1 are all free on 127.0.0.1."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(lo, hi - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range found")


# -- HTCondor: a personal pool from binaries on PATH or $CAMPUS_FACTORY_CONDOR_PREFIX ---------------


def condor_prefix() -> Path | None:
    """Where HTCondor is installed (a prefix with sbin/condor_master), or None."""
    candidates = [os.environ.get("CAMPUS_FACTORY_CONDOR_PREFIX", "")]
    master = shutil.which("condor_master")
    if master:
        candidates.append(str(Path(master).resolve().parent.parent))
    candidates.append("/opt/condor")
    for c in candidates:
        if c and (Path(c) / "sbin" / "condor_master").exists():
            return Path(c)
    return None


def kill_by_env(name: str, value: str) -> None:
    """SIGKILL every process whose environment has name=value (daemons that left their session)."""
    needle = f"{name}={value}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in env:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), 9)


@dataclass(frozen=True)
class CondorPool:
    prefix: Path
    local_dir: Path
    config_file: Path
    collector: str
    submit_dir: Path

    @property
    def env(self) -> dict[str, str]:
        path = f"{self.prefix}/bin:{self.prefix}/sbin:{os.environ.get('PATH', '')}"
        return {"CONDOR_CONFIG": str(self.config_file), "PATH": path}

    def run(self, *argv: str, check: bool = True, timeout: float = 60, user: str | None = None) -> str:
        cmd = list(argv)
        if user:
            env_args = [f"{k}={v}" for k, v in self.env.items()]
            cmd = ["runuser", "-u", user, "--", "env", *env_args, *cmd]
        proc = subprocess.run(
            cmd,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.submit_dir,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} exited {proc.returncode}: {proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def token(self, identity: str, *authz: str, lifetime: int = 3600) -> str:
        args = ["condor_token_create", "-identity", identity, "-lifetime", str(lifetime)]
        for a in authz:
            args += ["-authz", a]
        return self.run(*args).strip()


#: a personal pool on 127.0.0.1 run as root (lab notes: CONDOR_IDS, loopback, no shared port)
BASE_POOL_CONFIG = """
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
DAEMON_LIST = {daemons}
TRUST_DOMAIN = localhost
UID_DOMAIN = localhost
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
BASE_CGROUP =
USE_PID_NAMESPACES = False
"""


@contextlib.contextmanager
def personal_pool(
    label: str,
    daemons: str,
    extra_config: str = "",
    wait_for: tuple[str, ...] = ("-schedd",),
    *,
    port: int | None = None,
    before_start: Callable[[Path], None] | None = None,
) -> Iterator[tuple[Path, int, dict[str, str]]]:
    """Start a personal pool under /tmp (mode 755: jobs run as `nobody`); yields (base dir, collector
    port, client environment) once ``condor_status`` lists every daemon kind in ``wait_for``.
    ``port``: the collector's (default: a free one); ``before_start(local_dir)`` runs before the
    master starts (e.g. to install tokens in ``local_dir/tokens.d``)."""
    prefix = condor_prefix()
    if prefix is None:
        pytest.skip("no HTCondor binaries (condor_master on PATH, $CAMPUS_FACTORY_CONDOR_PREFIX or /opt/condor)")
    if os.geteuid() != 0:
        service_unavailable(label, "the tests start it as root")
    # not under pytest's tmp dir: that is mode 700, and jobs are submitted as `nobody`
    base = Path(tempfile.mkdtemp(prefix="cf-condor-", dir="/tmp"))
    base.chmod(0o755)
    local = base / "local"
    for d in ("log", "spool", "execute", "lock", "run", "passwords.d", "tokens.d"):
        (local / d).mkdir(parents=True, exist_ok=True)
    port = port or free_port_range(1)
    config_file = base / "condor_config"
    config_file.write_text(
        BASE_POOL_CONFIG.format(prefix=prefix, local=local, port=port, daemons=daemons) + extra_config
    )
    env = {"CONDOR_CONFIG": str(config_file), "PATH": f"{prefix}/bin:{prefix}/sbin:{os.environ.get('PATH', '')}"}
    if before_start is not None:
        before_start(local)
    master = subprocess.Popen(
        [str(prefix / "sbin" / "condor_master"), "-f"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def listed(kind: str) -> bool:
        try:
            out = subprocess.run(
                ["condor_status", kind, "-af", "Name"],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:  # a busy machine: ask again
            return False
        return out.returncode == 0 and bool(out.stdout.strip())

    try:
        deadline = time.monotonic() + 180  # ~5 s when idle; much more on a loaded fresh machine
        while not all(listed(k) for k in wait_for):
            if time.monotonic() > deadline:
                service_unavailable(label, (local / "log" / "MasterLog").read_text()[-3000:])
            time.sleep(0.5)
        yield base, port, env
    finally:
        master.terminate()  # SIGTERM: the master shuts its daemons down
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        kill_by_env("CONDOR_CONFIG", str(config_file))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def condor_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CondorPool]:
    """A personal pool (collector, negotiator, schedd; no startd: pilots are the startds)."""
    # the pool side as campus-factory generates it: pilot security (strict: pilots are the only
    # startds here), offline-ad rank, and the routes' job transforms
    from campus_factory.config import Config
    from campus_factory.pilot.poolconfig import central_manager_config, schedd_config

    generated = "CLASSAD_LIFETIME = 60\n" + central_manager_config(Config(), strict=True) + schedd_config(Config())
    extra = os.environ.get("CF_TEST_POOL_EXTRA_CONFIG")
    if extra:
        generated += Path(extra).read_text()
    daemons = "MASTER COLLECTOR NEGOTIATOR SCHEDD"
    # the negotiator too: `doctor` reads NEGOTIATOR_PRE_JOB_RANK from the negotiator the collector lists
    with personal_pool("HTCondor personal pool", daemons, generated, ("-schedd", "-negotiator")) as (base, port, env):
        submit_dir = base / "submit"
        submit_dir.mkdir()
        submit_dir.chmod(0o1777)
        prefix = condor_prefix()
        assert prefix is not None
        yield CondorPool(prefix, base / "local", Path(env["CONDOR_CONFIG"]), f"127.0.0.1:{port}", submit_dir)
