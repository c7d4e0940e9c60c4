"""The local provider: pilots as processes on this host, through the real loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.local import LocalProvider


def config(tmp_path: Path, command: list[str]):
    return parse_config(
        {
            "factory": {"name": "loc", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            "pilot": {"command": command},
            "sites": [
                {
                    "name": "here",
                    "provider": "local",
                    "idle_timeout": 0,
                    "slot": {"cpus": 1, "memory_mb": 100},
                    "limits": {"max_pilots": 2, "max_queued": 2, "max_submit_per_cycle": 2},
                    "batch": {"work_dir": str(tmp_path / "work")},
                }
            ],
        }
    )


def wait_for(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_pilots_run_are_observed_and_leave_cleanly(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["sleep", "60"])
    prov = LocalProvider(cfg.sites[0], cfg.pilot, "loc")
    demand = StaticDemand([JobGroup("g", 2, cpus=1, memory_mb=100, disk_mb=0)])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"here": prov})
    r = asyncio.run(f.run_once())
    assert r.submitted == 2
    asyncio.run(f.run_once())
    assert {p.state.value for p in f.ledger.pilots(factory="loc")} == {"running"}
    demand.groups = []
    asyncio.run(f.run_once())  # idle_timeout 0: asked to leave (TERM, trapped)

    def ended() -> bool:
        asyncio.run(f.run_once())
        return {p.state.value for p in f.ledger.pilots(factory="loc")} == {"ended"}

    assert wait_for(ended)
    logs = sorted((tmp_path / "work").glob("cf-loc-*.out"))
    assert len(logs) == 2 and all("asked=1" in p.read_text() for p in logs)


def test_exit_status_and_plain_cancel(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["sh", "-c", "exit 3"])
    prov = LocalProvider(cfg.sites[0], cfg.pilot, "loc")
    req = PilotRequest("here-1", 1, 100, 0, 0, 60)
    (sub,) = asyncio.run(prov.submit(Submission("aaaaaaaaaa", "cf-loc-aaaaaaaaaa", (req,))))

    def status():
        return asyncio.run(prov.observe([sub.job_id], "cf-loc-")).statuses[sub.job_id]

    assert wait_for(lambda: status().state is JobState.FAILED)
    assert status().exit_code == 3
    cfg2 = config(tmp_path, ["sleep", "60"])
    prov2 = LocalProvider(cfg2.sites[0], cfg2.pilot, "loc")
    (sub2,) = asyncio.run(prov2.submit(Submission("bbbbbbbbbb", "cf-loc-bbbbbbbbbb", (req,))))
    assert asyncio.run(prov2.observe([sub2.job_id], "cf-loc-")).statuses[sub2.job_id].state is JobState.RUNNING
    asyncio.run(prov2.cancel([sub2.job_id], graceful=False))
    assert wait_for(
        lambda: asyncio.run(prov2.observe([sub2.job_id], "cf-loc-")).statuses[sub2.job_id].state is JobState.CANCELLED
    )
    # a restarted provider object finds the pilots through their state files
    prov3 = LocalProvider(cfg2.sites[0], cfg2.pilot, "loc")
    obs = asyncio.run(prov3.observe([], "cf-loc-"))
    assert {s.tag for s in obs.tagged} == {"cf-loc-aaaaaaaaaa", "cf-loc-bbbbbbbbbb"}
