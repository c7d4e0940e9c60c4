"""Fixtures of the reliability and security tests.

The cloud fixtures (moto EC2 with fault injection, mimic OpenStack) are those of
tests/providers/clouds/conftest.py, imported by name (a session that also runs the cloud tests
starts one server for each directory). ``spare_slurm`` is a second, one-node Slurm cluster of
this module's own, whose slurmctld a test may stop and start again.
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
from tests.conftest import free_port_range, run_service_script, service_unavailable, stop_service
from tests.providers.clouds.conftest import ec2, mimic_server, moto_server, nova

__all__ = ["SpareSlurm", "ec2", "mimic_server", "moto_server", "nova", "spare_slurm"]


@dataclass(frozen=True)
class SpareSlurm:
    """A one-node Slurm cluster (2 CPUs) started for these tests; ``env`` selects it."""

    name: str
    base: Path

    @property
    def conf(self) -> str:
        return str(self.base / "etc" / "slurm.conf")

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": self.conf}

    @property
    def pid_file(self) -> Path:
        return self.base / "run" / "slurmctld.pid"

    def _run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout)

    def controller_up(self) -> bool:
        return self._run("scontrol", "ping", timeout=20).stdout.count("is UP") > 0

    def stop_controller(self) -> None:
        """SIGTERM to slurmctld (by its pid file); returns once it has exited."""
        pid = int(self.pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise AssertionError(f"slurmctld {pid} did not stop")

    def start_controller(self) -> None:
        """Start slurmctld again (it recovers its jobs from the state directory)."""
        proc = self._run("slurmctld", "-f", self.conf)
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.controller_up():
                return
            time.sleep(0.2)
        raise AssertionError("slurmctld did not come back")

    def jobs(self) -> list[str]:
        out = self._run("squeue", "--me", "-h", "-r", "-o", "%i|%T|%j").stdout
        return [line for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def spare_slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpareSlurm]:
    base = tmp_path_factory.mktemp("spare-slurm")
    env = {
        "CLUSTER": "cfspare",
        "BASE": str(base),
        "PORT_BASE": str(free_port_range(2)),
        "NNODES": "1",
        "NODE_CPUS": "2",
        "NODE_MEM": "2000",
        "MIN_JOB_AGE": "60",
        "FIRST_JOB_ID": "500000",
    }
    cluster = SpareSlurm("cfspare", base)
    try:
        run_service_script("slurm-up.sh", env)
        if not cluster.controller_up():
            service_unavailable("spare Slurm cluster", "slurmctld does not answer scontrol ping")
        yield cluster
    finally:
        # a test may have stopped the controller: bring it back so slurm-down.sh can cancel the jobs
        if cluster.pid_file.exists() and not cluster.controller_up():
            with contextlib.suppress(AssertionError, OSError, subprocess.SubprocessError):
                cluster.start_controller()
        stop_service("slurm-down.sh", env)
