"""The service scripts clean up after a start that failed half-way (tests/services/*-down.sh)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import SERVICES, free_port_range, service_unavailable


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slurm
def test_a_slurm_start_that_fails_half_way_is_stopped_entirely(tmp_path: Path) -> None:
    """slurm-up.sh failing after it started munged, slurmctld and two slurmd: slurm-down.sh (what
    the fixtures run in their finally) stops all of them and removes munged's directory."""
    if os.geteuid() != 0:
        service_unavailable("slurm-up.sh", "the service scripts must run as root")
    base = tmp_path / "slurm"
    env = {
        **os.environ,
        "CLUSTER": "cffail",
        "BASE": str(base),
        "PORT_BASE": str(free_port_range(3)),
        "NNODES": "2",
        "FAIL_BEFORE_READY": "1",  # every daemon started, then it fails
        "MUNGE_DIR": f"/run/cf-munge-test-{os.getpid()}",
    }
    up = subprocess.run(["bash", str(SERVICES / "slurm-up.sh")], env=env, capture_output=True, text=True, timeout=600)
    expected = ["slurmctld.pid", "slurmd-cffail-n1.pid", "slurmd-cffail-n2.pid"]
    files = [base / "run" / name for name in expected] + [Path(env["MUNGE_DIR"]) / "munged.pid"]
    deadline = time.monotonic() + 60  # the daemons write their pid files once in the background
    while not all(f.exists() and f.read_text().strip() for f in files) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = [int(f.read_text().split()[0]) for f in files if f.exists() and f.read_text().strip()]
    try:
        assert up.returncode != 0 and "failing on purpose" in up.stderr, up.stdout
        assert len(started) == 4 and all(alive(p) for p in started), (started, up.stdout, up.stderr)
    finally:
        down = subprocess.run(
            ["bash", str(SERVICES / "slurm-down.sh")], env=env, capture_output=True, text=True, timeout=300
        )
    assert [p for p in started if alive(p)] == [], down.stdout
    assert not Path(env["MUNGE_DIR"]).exists()
