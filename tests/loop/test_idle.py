"""Idle time runs from the end of a pilot's last job (as the loop saw it), not from ``joined``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.loop.arrivals import ArrivalTracker
from campus_factory.loop.factory import Factory
from campus_factory.loop.idle import IdleTracker
from campus_factory.loop.usage import JobTracker
from campus_factory.planner import PilotView
from campus_factory.pool.base import slot_from_ad
from campus_factory.pool.fake import FakePool, pilot_ad
from campus_factory.pool.htcondor import RunningJob
from campus_factory.providers.fake import FakeProvider


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_the_tracker_notes_the_first_idle_look_after_a_busy_one() -> None:
    idle = IdleTracker()
    busy = slot_from_ad(pilot_ad("a", "p1", used_cpus=1), 0.0)
    free = slot_from_ad(pilot_ad("a", "p1"), 0.0)
    assert busy is not None and free is not None and busy.busy and not free.busy
    idle.observe({"p1": free}, 100.0)
    assert idle.idle_since("p1") is None  # never seen busy: its state change counts
    idle.observe({"p1": busy}, 160.0)
    assert idle.idle_since("p1") is None
    idle.observe({"p1": free}, 220.0)
    idle.observe({"p1": free}, 280.0)
    assert idle.idle_since("p1") == 220.0  # the first look without a job, not the later ones
    (view,) = idle.apply([PilotView("p1", "a", "joined", 10.0)], 290.0)
    assert view.idle_since == 220.0
    idle.observe({"p1": busy}, 300.0)
    idle.observe({}, 340.0)  # missed by a look (its ad late): idle from that look, not forgotten
    assert idle.idle_since("p1") == 340.0
    idle.observe({"p1": busy}, 400.0)
    (view,) = idle.apply([PilotView("p1", "a", "joined", 10.0)], 460.0)  # the pool unread: busy unknown
    assert view.idle_since == 460.0  # at the earliest now, never its joining
    assert idle.apply([], 470.0) == [] and idle.idle_since("p1") is None  # no longer live: forgotten


def test_a_pilot_is_cancelled_idle_timeout_after_its_last_job_not_after_joining(tmp_path: Path) -> None:
    clock = Clock()
    cfg = parse_config(
        {
            "factory": {"name": "idle", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "idle_timeout": 120,
                    "slot": {"cpus": 1, "memory_mb": 2000, "sizing": "fixed"},
                }
            ],
        }
    )
    demand = StaticDemand()
    demand.groups = [JobGroup("g", 1, cpus=1, memory_mb=1000, disk_mb=0)]
    pool = FakePool([])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"a": FakeProvider("a", clock=clock)}, clock=clock)
    f.pool = pool
    asyncio.run(f.run_once())
    (p,) = f.ledger.live_pilots("idle")
    clock.t += 30
    pool.ads = [pilot_ad("a", p.pilot_id, cpus=1, memory_mb=2000, used_cpus=1, factory="idle")]
    demand.groups = []
    asyncio.run(f.run_once())  # joined, running the job
    assert f.ledger.pilot(p.pilot_id).state.value == "joined"
    for _ in range(5):  # busy for five minutes: long past the idle timeout since joining
        clock.t += 60
        asyncio.run(f.run_once())
    pool.ads = [pilot_ad("a", p.pilot_id, cpus=1, memory_mb=2000, factory="idle")]
    clock.t += 60
    r = asyncio.run(f.run_once())  # its job ended: idle from now
    assert r.plan is not None and r.plan.site("a").cancel == ()
    clock.t += 60
    r = asyncio.run(f.run_once())  # idle for 60 s < 120 s
    assert r.plan is not None and r.plan.site("a").cancel == ()
    clock.t += 60
    r = asyncio.run(f.run_once())  # idle for 120 s: cancelled
    assert r.plan is not None
    (cancel,) = r.plan.site("a").cancel
    assert cancel.pilot_id == p.pilot_id and cancel.reason == "idle for 120 s >= idle_timeout"


def test_a_busy_pilot_missed_by_a_look_or_an_unread_pool_is_not_idle_since_joining(tmp_path: Path) -> None:
    clock = Clock()
    cfg = parse_config(
        {
            "factory": {"name": "idle", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "idle_timeout": 120,
                    "slot": {"cpus": 1, "memory_mb": 2000, "sizing": "fixed"},
                }
            ],
        }
    )
    demand = StaticDemand()
    demand.groups = [JobGroup("g", 1, cpus=1, memory_mb=1000, disk_mb=0)]
    pool = FakePool([])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"a": FakeProvider("a", clock=clock)}, clock=clock)
    f.pool = pool
    asyncio.run(f.run_once())
    (p,) = f.ledger.live_pilots("idle")
    busy = [pilot_ad("a", p.pilot_id, cpus=1, memory_mb=2000, used_cpus=1, factory="idle")]
    pool.ads, demand.groups = busy, []
    for _ in range(4):  # joined and busy, long past the idle timeout since joining
        clock.t += 60
        asyncio.run(f.run_once())
    pool.ads = []  # one look misses its ad (a loaded collector)
    clock.t += 60
    r = asyncio.run(f.run_once())
    assert r.plan is not None and r.plan.site("a").cancel == ()
    pool.ads = busy
    clock.t += 60
    asyncio.run(f.run_once())
    pool.fail = "collector timed out"  # the pool cannot be read at all
    clock.t += 60
    r = asyncio.run(f.run_once())
    assert r.plan is not None and r.plan.site("a").cancel == ()
    assert f.ledger.pilot(p.pilot_id).state.value == "joined"
    pool.fail, pool.ads = None, [pilot_ad("a", p.pilot_id, cpus=1, memory_mb=2000, factory="idle")]
    clock.t += 60
    r = asyncio.run(f.run_once())  # its job ended: idle from now, still kept
    assert r.plan is not None and r.plan.site("a").cancel == ()
    clock.t += 120
    r = asyncio.run(f.run_once())  # idle for the idle timeout after its job: cancelled
    assert r.plan is not None
    (cancel,) = r.plan.site("a").cancel
    assert cancel.pilot_id == p.pilot_id and cancel.reason == "idle for 120 s >= idle_timeout"


def test_arrival_rates_from_new_job_ids_or_idle_growth_and_their_decay() -> None:
    t = ArrivalTracker()
    assert t.observe([JobGroup("g", 5)], 0.0)[0].arrivals_per_hour == 0.0  # the first look: unknown
    (g,) = t.observe([JobGroup("g", 11)], 60.0)  # 6 more in a minute: 360/h, half of it smoothed in
    assert g.arrivals_per_hour == 180.0
    (h,) = t.observe([JobGroup("h", 2, jobs=("1.0", "1.1"))], 120.0)  # new group: arrived whole
    assert h.arrivals_per_hour == 60.0 and t.rate("g") == 90.0  # g is gone: its rate decays
    (h,) = t.observe([JobGroup("h", 2, jobs=("1.1", "1.2"))], 180.0)  # one new id, count unchanged
    assert h.arrivals_per_hour == 60.0


class Jobs:
    """A job source like the pool's dynamic-slot query: the jobs running on our pilots."""

    def __init__(self) -> None:
        self.running: list[RunningJob] = []

    def running_jobs(self) -> list[RunningJob]:
        return list(self.running)


def test_a_pilot_running_a_job_is_busy_while_its_partitionable_slot_ad_lags(tmp_path: Path) -> None:
    """A loaded collector can still hold a partitionable slot's unclaimed ad while its dynamic
    slot runs a job: the job counts, so the pilot is not idle since joining (seen in CI)."""
    clock = Clock()
    cfg = parse_config(
        {
            "factory": {"name": "idle", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "idle_timeout": 120,
                    "slot": {"cpus": 1, "memory_mb": 2000, "sizing": "fixed"},
                }
            ],
        }
    )
    demand = StaticDemand()
    demand.groups = [JobGroup("g", 1, cpus=1, memory_mb=1000, disk_mb=0)]
    pool, jobs = FakePool([]), Jobs()
    provider = FakeProvider("a", clock=clock)
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"a": provider}, clock=clock, jobs=JobTracker(jobs))
    f.pool = pool
    asyncio.run(f.run_once())
    (p,) = f.ledger.live_pilots("idle")
    pool.ads = [pilot_ad("a", p.pilot_id, cpus=1, memory_mb=2000, factory="idle")]  # the stale, unclaimed ad
    jobs.running = [RunningJob(p.pilot_id, "sched#1.0#1", "alice", "", clock.t, 1)]
    demand.groups = []
    for _ in range(5):  # long past the idle timeout since joining, its job still running
        clock.t += 60
        r = asyncio.run(f.run_once())
        assert r.plan is not None and r.plan.site("a").cancel == (), r.plan.site("a").cancel
    jobs.running = []  # the job ended: idle from this look
    clock.t += 60
    r = asyncio.run(f.run_once())
    assert r.plan is not None and r.plan.site("a").cancel == ()
    clock.t += 120
    r = asyncio.run(f.run_once())
    assert r.plan is not None
    (cancel,) = r.plan.site("a").cancel
    assert cancel.pilot_id == p.pilot_id and cancel.reason == "idle for 120 s >= idle_timeout"
