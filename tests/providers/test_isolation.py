"""A site whose scheduler commands hang is isolated: its commands time out (and are killed), and
the other sites keep getting pilots every cycle, on time. No service needed: the hanging site is
the real PBS provider with the real LocalExecutor, pointed at a bin_dir whose qstat/qsub hang."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from campus_factory.config import Config, parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.providers import build_provider
from campus_factory.providers.fake import FakeProvider
from campus_factory.providers.pbs import PbsProvider
from campus_factory.transport.executor import LocalExecutor

TIMEOUT = 1.0  # command_timeout of the hanging site


def hanging_bin(tmp_path: Path, marker: str, *, qstat_hangs: bool) -> Path:
    """qsub (and qstat when asked) sleep far past any timeout; the marker finds leftovers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hang = f"#!/bin/sh\ncat >/dev/null 2>&1 &\nexec sleep {marker}\n"
    (bin_dir / "qsub").write_text(hang)
    (bin_dir / "qstat").write_text(hang if qstat_hangs else '#!/bin/sh\necho \'{"timestamp": 1, "Jobs": {}}\'\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def make_config(tmp_path: Path, bin_dir: Path) -> Config:
    limits = {"max_pilots": 10, "max_queued": 10, "max_submit_per_cycle": 2}
    slot = {"cpus": 1, "memory_mb": 100, "disk_mb": 0}
    return parse_config(
        {
            "factory": {"name": "iso", "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "cycle_interval": 1},
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "stuck",
                    "provider": "pbs",
                    "slot": slot,
                    "limits": limits,
                    "walltime": "1h",
                    "batch": {"bin_dir": str(bin_dir), "work_dir": str(tmp_path / "w"), "command_timeout": TIMEOUT},
                },
                {"name": "good", "provider": "fake", "slot": slot, "limits": limits, "walltime": "1h"},
            ],
        }
    )


def build(cfg: Config) -> tuple[Factory, FakeProvider]:
    stuck = build_provider(cfg.sites[0], cfg.pilot, LocalExecutor(), cfg.factory.name)
    assert isinstance(stuck, PbsProvider)
    good = FakeProvider("good")
    demand = StaticDemand([JobGroup("g", 40, cpus=1, memory_mb=100, disk_mb=0)])
    return Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"stuck": stuck, "good": good}), good


def leftovers(marker: str) -> str:
    return subprocess.run(["pgrep", "-af", f"sleep {marker}"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("qstat_hangs", [True, False], ids=["observe-hangs", "submit-hangs"])
def test_a_hanging_site_does_not_delay_the_others(tmp_path: Path, qstat_hangs: bool) -> None:
    marker = f"3600.{uuid.uuid4().int % 10**8}"
    f, good = build(make_config(tmp_path, hanging_bin(tmp_path, marker, qstat_hangs=qstat_hangs)))
    total = 0
    for cycle in range(3):
        started = time.monotonic()
        report = asyncio.run(f.run_once())
        took = time.monotonic() - started
        # the good site got its pilots this cycle, and the cycle waited one timeout at most
        assert len(good.jobs) - total == 2, (cycle, report.errors)
        total = len(good.jobs)
        assert took < 2 * TIMEOUT + 1.5, f"cycle {cycle} took {took:.1f} s"
        if qstat_hangs or cycle == 0:
            assert any(e.startswith("stuck:") and "timed out after 1 s" in e for e in report.errors), report.errors
        else:  # after a failed submission the site backs off: nothing is tried, nothing waits
            assert report.plan is not None and report.plan.site("stuck").submit == 0
            assert "backoff" in report.plan.site("stuck").health, report.plan.site("stuck")
        assert not any(e.startswith("good:") for e in report.errors)
    assert {j.state.value for j in good.active()} == {"running"}
    # nothing of the hanging commands is left behind: the executor killed their process groups
    assert leftovers(marker) == ""
    stuck_pilots = f.ledger.pilots(factory="iso", site="stuck")
    if qstat_hangs:
        assert stuck_pilots == []  # an unhealthy site gets no new pilots
    else:
        assert stuck_pilots and all(not p.job_id for p in stuck_pilots)  # submissions failed, recorded
