"""The loop hands the planner when each group's running jobs started (claim reuse, planner.reuse)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from tests.loop.fakes import Clock, Jobs

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.loop.usage import JobTracker
from campus_factory.planner import PilotView, Plan, SiteSpec
from campus_factory.pool.fake import FakePool, pilot_ad
from campus_factory.pool.htcondor import RunningJob
from campus_factory.providers.fake import FakeProvider

T0 = 1_000_000.0


class Seen(Factory):
    """The real loop; the groups each plan was made from are kept."""

    seen: list[list[JobGroup]]

    def make_plan(
        self, groups: Sequence[JobGroup], specs: Sequence[SiteSpec], views: Sequence[PilotView], now: float
    ) -> Plan:
        self.seen.append(list(groups))
        return super().make_plan(groups, specs, views, now)


def _group(*jobs: str) -> JobGroup:
    return JobGroup("g", len(jobs), cpus=1, memory_mb=1000, disk_mb=0, owner="alice", schedd="sched", jobs=jobs)


def test_the_groups_running_jobs_reach_the_planner_with_their_start(tmp_path: Path) -> None:
    clock = Clock(T0)
    site = {"name": "a", "provider": "fake", "slot": {"cpus": 1, "memory_mb": 1000, "sizing": "fit"}}
    cfg = parse_config({"factory": {"name": "ru", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"}, "sites": [site]})
    demand, pool, jobs = StaticDemand(), FakePool([]), Jobs()
    providers = {"a": FakeProvider("a", clock=clock)}
    f = Seen(cfg, Ledger.open(cfg.factory.ledger_url), demand, providers, clock=clock, pool=pool, jobs=JobTracker(jobs))
    f.seen = []
    demand.groups = [_group("1.0", "2.0")]
    asyncio.run(f.run_once())
    p = f.ledger.live_pilots("ru")[0]
    assert f.seen[-1][0].running_started == ()  # nothing runs yet
    clock.t = T0 + 60
    jobs.running = [RunningJob(p.pilot_id, "sched#1.0#1", "alice", "transparent", T0 + 30, 1)]
    pool.ads = [pilot_ad("a", p.pilot_id, cpus=1, memory_mb=1000, used_cpus=1, factory="ru")]
    demand.groups = [_group("2.0")]
    asyncio.run(f.run_once())
    assert f.seen[-1][0].running_started == (T0 + 30,)
    assert f.jobs is not None and f.jobs.running_by_group() == {"g": [T0 + 30]}
