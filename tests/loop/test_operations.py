"""What operators and budgets change in the loop: scale, pause, drain, spend ceilings, job runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger, PilotState
from campus_factory.ledger.accounting import pilot_jobs
from campus_factory.ledger.controls import drain_pilot, pending_requests, set_paused
from campus_factory.ledger.overrides import set_override
from campus_factory.loop.factory import Factory
from campus_factory.loop.usage import JobTracker
from campus_factory.pool.fake import FakePool
from campus_factory.pool.htcondor import RunningJob
from campus_factory.providers.fake import FakeProvider


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, site_extra: dict | None = None, top: dict | None = None):
    clock = Clock()
    cfg = parse_config(
        {
            "factory": {"name": "ops", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            **(top or {}),
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "slot": {"cpus": 4, "memory_mb": 8000},
                    "limits": {"max_pilots": 10, "max_queued": 10, "max_submit_per_cycle": 10},
                    **(site_extra or {}),
                }
            ],
        }
    )
    prov = FakeProvider("a", clock=clock, start_delay=0)
    demand = StaticDemand([JobGroup("g", 40, cpus=4, memory_mb=1000, disk_mb=0)])  # 10 pilots wanted
    return Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"a": prov}, clock=clock), prov, clock


def test_site_scale_ceiling_caps_the_site(tmp_path: Path) -> None:
    f, prov, clock = make(tmp_path)
    set_override(f.ledger, "ops", "a", floor=None, ceiling=3, now=clock.t)
    r = asyncio.run(f.run_once())
    assert r.submitted == 3


def test_paused_site_gets_nothing_and_resumes(tmp_path: Path) -> None:
    f, prov, clock = make(tmp_path)
    set_paused(f.ledger, "ops", "a", True, now=clock.t)
    assert asyncio.run(f.run_once()).submitted == 0
    set_paused(f.ledger, "ops", "a", False, now=clock.t)
    assert asyncio.run(f.run_once()).submitted == 10


def test_drain_request_asks_the_pilot_to_leave_once(tmp_path: Path) -> None:
    f, prov, clock = make(tmp_path)
    f.demand.groups = [JobGroup("g", 1, cpus=4, memory_mb=1000, disk_mb=0)]  # one pilot
    asyncio.run(f.run_once())
    clock.t += 1
    asyncio.run(f.run_once())
    (p,) = f.ledger.live_pilots("ops")
    assert p.state is PilotState.RUNNING
    drain_pilot(f.ledger, "ops", p.pilot_id, now=clock.t, reason="node maintenance")
    asyncio.run(f.run_once())
    assert pending_requests(f.ledger, "ops") == []
    hist = [(t.to_state, t.detail) for t in f.ledger.transitions(p.pilot_id)]
    assert (PilotState.RETIRING, "drained: node maintenance") in hist
    asyncio.run(f.run_once())
    assert f.ledger.pilot(p.pilot_id).state is PilotState.ENDED  # type: ignore[union-attr]


def test_spend_ceiling_stops_new_pilots(tmp_path: Path) -> None:
    # 4 cores at 0.5 per core-hour = 2.0 per pilot-hour; the site may burn 5.0 per hour: 2 pilots
    f, prov, clock = make(tmp_path, {"cost_per_core_hour": 0.5, "budget": {"max_per_hour": 5.0}})
    r = asyncio.run(f.run_once())
    assert r.submitted == 2
    assert r.plan is not None and r.plan.site("a").bound_by == "budget"
    assert any(x.startswith("budget:") for x in r.plan.site("a").reasons)
    assert asyncio.run(f.run_once()).submitted == 0  # still at the ceiling


def test_overall_ceiling_applies_across_sites(tmp_path: Path) -> None:
    f, prov, clock = make(tmp_path, {"cost_per_core_hour": 0.5}, {"budget": {"max_per_hour": 4.0}})
    assert asyncio.run(f.run_once()).submitted == 2


class Jobs:
    def __init__(self) -> None:
        self.running: list[RunningJob] = []

    def running_jobs(self) -> list[RunningJob]:
        return list(self.running)


def test_job_runs_are_recorded_and_closed(tmp_path: Path) -> None:
    f, prov, clock = make(tmp_path)
    f.demand.groups = [JobGroup("g", 1, cpus=4, memory_mb=1000, disk_mb=0)]
    jobs = Jobs()
    f.jobs = JobTracker(jobs)
    f.pool = FakePool([])
    asyncio.run(f.run_once())
    (p,) = f.ledger.live_pilots("ops")
    jobs.running = [RunningJob(p.pilot_id, "sched#1.0#1", "alice", "transparent", clock.t, 2)]
    clock.t += 60
    asyncio.run(f.run_once())
    assert [(r.job_id, r.ended_at) for r in pilot_jobs(f.ledger, p.pilot_id)] == [("sched#1.0#1", None)]
    jobs.running = []
    clock.t += 60
    asyncio.run(f.run_once())
    (run,) = pilot_jobs(f.ledger, p.pilot_id)
    assert run.ended_at == clock.t and run.owner == "alice" and run.cpus == 2


def test_a_daily_ceiling_counts_pilots_that_ended_in_the_last_24_hours(tmp_path: Path) -> None:
    # 4 cores at 0.5 per core-hour = 2.0 per pilot-hour; 5.0 per day
    f, prov, clock = make(tmp_path, {"cost_per_core_hour": 0.5, "budget": {"max_per_day": 5.0}})
    assert asyncio.run(f.run_once()).submitted == 2  # (5 - 0) // 2
    clock.t += 1
    asyncio.run(f.run_once())  # they start
    clock.t += 3600
    for p in f.ledger.live_pilots("ops"):
        prov.finish(p.job_id or "")
    r = asyncio.run(f.run_once())  # they end after an hour each: 4.0 spent today
    assert not f.ledger.live_pilots("ops") and r.submitted == 0
    assert "/day" in " ".join(r.plan.site("a").reasons) if r.plan else False
    assert asyncio.run(f.run_once()).submitted == 0  # still 4.0 spent within 24 h
    # a new process reads the pilots that ended in the window from the ledger
    g, _, _ = make(tmp_path, {"cost_per_core_hour": 0.5, "budget": {"max_per_day": 5.0}})
    g.providers, g.clock = f.providers, clock
    assert asyncio.run(g.run_once()).submitted == 0
    clock.t += 86400  # a day later the spend has left the window
    assert asyncio.run(g.run_once()).submitted == 2
