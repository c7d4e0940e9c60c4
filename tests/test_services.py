"""The service scripts clean up after a start that failed half-way (tests/services/*-down.sh)."""

from __future__ import annotations

import os
import subprocess
import threading
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


def test_sge_down_stops_this_runs_daemon_when_the_recorded_pid_is_not_its_own(tmp_path: Path) -> None:
    """sge-up.sh records a daemon's pid just after starting it, when the newest process of that
    name may still be the parent that forks the daemon and exits (a loaded machine left a real
    sge_qmaster running after the suite that way). sge-down.sh then finds the daemon started by
    this test run (its CF_TEST_RUN) and stops it; a daemon of another run is left alone."""
    fake = tmp_path / "bin"
    fake.mkdir()
    daemon = fake / "sge_qmaster"  # a process whose name is sge_qmaster (a copy of sleep)
    daemon.write_bytes(Path("/bin/sleep").read_bytes())
    daemon.chmod(0o755)
    qconf = fake / "qconf"  # no SGE answers: the script goes straight to the signals
    qconf.write_text("#!/bin/sh\nexit 1\n")
    qconf.chmod(0o755)
    run = f"cf-test-sge-down-{os.getpid()}"
    mine = subprocess.Popen([str(daemon), "300"], env={**os.environ, "CF_TEST_RUN": run}, start_new_session=True)
    elsewhere = {**os.environ, "CF_TEST_RUN": "another-run"}
    other = subprocess.Popen([str(daemon), "300"], env=elsewhere, start_new_session=True)
    # reaped as soon as it ends, as init reaps a real daemon (a zombie would still answer kill -0)
    reaper = threading.Thread(target=mine.wait, daemon=True)
    reaper.start()
    state = tmp_path / "state"
    state.mkdir()
    gone = subprocess.Popen(["true"])  # a pid that is gone by now
    gone.wait()
    (state / "qmaster.pid").write_text(f"{gone.pid}\n")
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "STATE": str(state),
        "CF_TEST_RUN": run,
        "STOP_TIMEOUT": "1",
        "SGE_EXECD_SPOOL": str(tmp_path / "spool"),
    }
    try:
        down = subprocess.run(
            ["bash", str(SERVICES / "sge-down.sh")], env=env, capture_output=True, text=True, timeout=120
        )
        reaper.join(timeout=30)
        assert mine.returncode is not None, "this run's daemon is still running"
        assert f"sge_qmaster pid {mine.pid}" in down.stdout, (down.stdout, down.stderr)
        assert down.returncode == 0 and "SGE down" in down.stdout, (down.stdout, down.stderr)
        assert alive(other.pid), "a daemon of another test run was stopped"
    finally:
        for p in (mine, other):
            p.kill()
            p.wait(timeout=30)
