"""`factory run` as a real process: one summary line per cycle at INFO (the plan table and the
decisions only at debug), and a clean-stop line on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "examples" / "demand-snapshot.json"


def exe() -> str:
    path = Path(sys.executable).parent / "campus-factory"
    return str(path if path.exists() else ROOT / ".venv" / "bin" / "campus-factory")


def config(tmp_path: Path) -> Path:
    path = tmp_path / "campus.toml"
    path.write_text(
        f"""
[factory]
name = "loopfac"
cycle_interval = "1s"
ledger_url = "sqlite:///{tmp_path}/ledger.sqlite"

[[sites]]
name = "one"
provider = "fake"
slot = {{ cpus = 4, memory_mb = 8000 }}
limits = {{ max_pilots = 3, max_queued = 2 }}
""",
        encoding="utf-8",
    )
    return path


def run_until_cycles(tmp_path: Path, n: int, *extra: str) -> tuple[int, str]:
    """Start the loop, wait (polling) until ``n`` cycles are logged, SIGTERM it; (exit code, stderr)."""
    log = tmp_path / f"run{len(extra)}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [exe(), *extra, "-c", str(config(tmp_path)), "factory", "run", "--demand-file", str(SNAPSHOT)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 180  # a cycle takes ~0.1 s; a loaded machine is slower
        while log.read_text().count("INFO campus_factory.loop.factory: cycle in") < n:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, log.read_text()


def test_one_info_line_per_cycle_and_a_clean_stop_on_sigterm(tmp_path: Path) -> None:
    code, out = run_until_cycles(tmp_path, 3)
    assert code == 0, out
    cycles = [ln for ln in out.splitlines() if "campus_factory.loop.factory: cycle in" in ln]
    assert len(cycles) >= 3
    first = r"cycle in [0-9.]+ s: [0-9]+ idle job\(s\) in [0-9]+ group\(s\) \([0-9]+ match no site\); "
    assert re.search(first + r"submitted 2, cancelled 0 \(one \+2/-0\); 0 error\(s\)$", cycles[0]), cycles[0]
    assert all(re.search(first + r"submitted [0-9]+, cancelled [0-9]+.*; 0 error\(s\)$", c) for c in cycles), cycles
    assert "decision site=" not in out and "Job groups:" not in out  # the table is debug only
    assert "factory loopfac started: 1 site(s), a cycle every 1 s" in out
    last = out.strip().splitlines()[-1]
    assert "factory loopfac stopped cleanly on SIGTERM" in last and "pilots keep running" in last


def test_the_plan_table_at_debug(tmp_path: Path) -> None:
    code, out = run_until_cycles(tmp_path, 1, "-v")
    assert code == 0, out
    assert "decision site=one" in out and "plan of this cycle:" in out and "Job groups:" in out


def test_first_run_says_sigterm_leaves_pilots_running() -> None:
    text = " ".join((ROOT / "docs" / "first-run.md").read_text().split())
    assert "with the line `factory campus stopped cleanly on SIGTERM`" in text
    assert "**leaves the pilots running**" in text
