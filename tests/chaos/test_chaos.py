"""The crash-safety harness in CI, with a few runs (the full run is `make chaos RUNS=200`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import service_unavailable

pytestmark = [pytest.mark.slurm, pytest.mark.ec2]

HARNESS = Path(__file__).with_name("harness.py")


def test_sigkill_at_random_points_leaves_nothing_unknown(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        service_unavailable("the chaos harness", "it starts Slurm as root")
    runs = int(os.environ.get("CF_CHAOS_RUNS", "4"))
    proc = subprocess.run(
        [sys.executable, str(HARNESS), "--runs", str(runs), "--seed", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"the harness printed no summary (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    summary = json.loads(lines[-1])
    assert summary["runs"] == runs
    assert (summary["orphans"], summary["over_limit"], summary["inconsistent"]) == (0, 0, 0), summary
    assert summary["killed_while_running"] == runs  # every kill hit a working factory
    assert proc.returncode == 0, proc.stderr[-2000:]
