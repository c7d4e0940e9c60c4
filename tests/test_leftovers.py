"""The check at the end of `make test` (tests/services/leftovers.py): it reports what the suite
started and left running, and nothing that was running before the baseline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.services.leftovers import leftovers, snapshot

SCRIPT = Path(__file__).parent / "services" / "leftovers.py"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "infinity"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def pids(found: list) -> set[int]:
    return {p.pid for p, _ in found}


def test_a_pilot_payload_started_after_the_baseline_is_reported(sleeper: subprocess.Popen[bytes]) -> None:
    before = {p.key for p in snapshot() if p.pid != sleeper.pid}
    found = leftovers(before, None)
    assert sleeper.pid in pids(found)
    assert {p.pid: why for p, why in found}[sleeper.pid] == "a pilot's payload (sleep infinity)"
    # the same process, already there at the baseline, is not
    assert sleeper.pid not in pids(leftovers({p.key for p in snapshot()}, None))


def test_the_run_marker_catches_what_has_no_service_name(tmp_path: Path) -> None:
    code = "import time; time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code], env={"CF_TEST_RUN": "run-42", "PATH": "/usr/bin:/bin"})
    try:
        for _ in range(100):  # the child has exec'd once its command line is python's
            if Path(f"/proc/{proc.pid}/cmdline").read_bytes().endswith(code.encode() + b"\0"):
                break
            time.sleep(0.02)
        base = tmp_path / "baseline.json"
        base.write_text("[]")
        found = {p.pid: why for p, why in leftovers(set(), "run-42")}
        assert "CF_TEST_RUN" in found[proc.pid]
        assert proc.pid not in pids(leftovers(set(), "another-run"))
        # the command line: exit 1 and name the process, within the grace period
        out = subprocess.run(
            [sys.executable, str(SCRIPT), "check", str(base), "--run", "run-42", "--grace", "0", "--names", "warn"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1 and f"pid {proc.pid} " in out.stderr and "still running" in out.stderr
    finally:
        proc.kill()
        proc.wait()


def test_by_name_only_fails_under_names_fail(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """A service-named process without the run's marker: listed, counted only with --names fail."""
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps(sorted(p.key for p in snapshot() if p.pid != sleeper.pid)))

    def check(names: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, str(SCRIPT), "check", str(base), "--run", "r", "--grace", "0", "--names", names]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    strict = check("fail")
    assert strict.returncode == 1 and f"pid {sleeper.pid} " in strict.stderr
    lax = check("warn")
    assert f"pid {sleeper.pid} " in lax.stderr and "without this run's marker" in lax.stderr
