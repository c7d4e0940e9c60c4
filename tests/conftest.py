"""Shared fixtures. Service fixtures start the real thing (as root, installing Debian packages
when missing). When a service cannot start, its tests fail under CI=true and skip elsewhere;
only `htcondor` tests may skip in CI, when no HTCondor binaries are found."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A real two-node Slurm cluster on this host (Debian's slurmctld/slurmd, munge)."""
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
    run_service_script("slurm-up.sh", env)
    cluster = SlurmCluster("cftest", str(base / "etc" / "slurm.conf"), base, 2, 4)
    try:
        yield cluster
    finally:
        # end every job first: slurmstepd outlives its slurmd, and pilots sleep forever
        subprocess.run(
            ["scancel", "--me"], env={**os.environ, **cluster.env}, capture_output=True, timeout=30
        )
        for _ in range(40):
            if not cluster.squeue():
                break
            time.sleep(0.25)
        subprocess.run(
            ["bash", str(SERVICES / "slurm-down.sh")],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
        )


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


def have(binary: str) -> bool:
    return shutil.which(binary) is not None
