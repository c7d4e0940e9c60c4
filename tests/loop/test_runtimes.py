"""Runtimes learned by the loop: a job seen idle in a group records its run with that group, the
group's median runtime reaches the planner, and it changes what the planner provisions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.ledger.accounting import pilot_jobs
from campus_factory.loop.factory import Factory
from campus_factory.loop.runtimes import RunGroups, RuntimeLearner
from campus_factory.loop.usage import JobTracker
from campus_factory.planner import Plan
from campus_factory.pool.fake import FakePool, pilot_ad
from campus_factory.pool.htcondor import RunningJob
from campus_factory.providers.fake import FakeProvider

T0 = 1_000_000.0
Key = tuple[str, str, float]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Jobs:
    """Jobs on pilots as the collector lists them, and their ends as the schedd's history has them."""

    def __init__(self) -> None:
        self.running: list[RunningJob] = []
        self.ends: dict[Key, float | bool] = {}

    def running_jobs(self) -> list[RunningJob]:
        return list(self.running)

    def run_ends(self, runs: list[Key]) -> dict[Key, float | bool]:
        return {k: v for k, v in self.ends.items() if k in runs}


class NoArrivals:
    """One job a minute would make a warm buffer (a second pilot) and blur what this shows."""

    def observe(self, groups: list[JobGroup], now: float) -> list[JobGroup]:
        return list(groups)


def _group(n: int) -> JobGroup:
    return JobGroup("g", 1, cpus=1, memory_mb=1000, disk_mb=0, owner="alice", schedd="sched", jobs=(f"{n}.0",))


def _history(tmp_path: Path, *, learn: bool) -> tuple[Factory, Plan]:
    """Five 100 s jobs of one group run one after another on one 2-core pilot (each seen idle a
    cycle before it runs); then, 2440 s later, with 1260 s of that pilot's life left, one more
    job of the group is idle. ``learn=False``: the loop remembers no job's group."""
    clock = Clock(T0)
    cfg = parse_config(
        {
            "factory": {"name": "rt", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "walltime": 4000,  # retire margin 300 s: a pilot leaves 3700 s after starting
                    "idle_timeout": 100_000,
                    "slot": {"cpus": 2, "memory_mb": 4000, "sizing": "fixed"},
                    "limits": {"max_pilots": 2, "max_queued": 2},
                }
            ],
        }
    )
    demand, pool, jobs = StaticDemand(), FakePool([]), Jobs()
    f = Factory(
        cfg,
        Ledger.open(cfg.factory.ledger_url),
        demand,
        {"a": FakeProvider("a", clock=clock)},
        clock=clock,
        pool=pool,
        jobs=JobTracker(jobs),
    )
    f.runtimes.refresh_s = 0.0
    f.arrivals = NoArrivals()  # type: ignore[assignment]
    if not learn:
        f.runtimes.groups = RunGroups(max_jobs=0)
    demand.groups = [_group(0)]
    asyncio.run(f.run_once())
    (p,) = f.ledger.live_pilots("rt")
    for k in range(1, 6):  # job k idle, job k-1 running (since 10 s after the last cycle)
        clock.t = T0 + 60 * k
        started = clock.t - 50
        jobs.running = [RunningJob(p.pilot_id, f"sched#{k - 1}.0#1", "alice", "transparent", started, 1)]
        if k >= 2:  # job k-2 ended 100 s after it began
            jobs.ends[(p.pilot_id, f"sched#{k - 2}.0#1", started - 60)] = started - 60 + 100
        pool.ads = [pilot_ad("a", p.pilot_id, cpus=2, memory_mb=4000, used_cpus=1, factory="rt")]
        demand.groups = [_group(k)]
        asyncio.run(f.run_once())
    clock.t = T0 + 2500  # job 4 ended at T0 + 350; the pilot, started at T0 + 60, leaves at T0 + 3760
    jobs.running = []
    jobs.ends[(p.pilot_id, "sched#4.0#1", T0 + 250)] = T0 + 350
    pool.ads = [pilot_ad("a", p.pilot_id, cpus=2, memory_mb=4000, factory="rt")]
    demand.groups = [_group(6)]
    report = asyncio.run(f.run_once())
    assert report.plan is not None and not report.errors, report.errors
    assert [r.ended_at for r in pilot_jobs(f.ledger, p.pilot_id)] == [T0 + 110 + 60 * i for i in range(5)]
    return f, report.plan


def test_a_learned_runtime_lets_the_group_use_a_pilot_near_its_end(tmp_path: Path) -> None:
    f, learned = _history(tmp_path / "learn", learn=True)
    (pilot,) = {r.pilot_id for r in f.ledger.live_pilots("rt")}
    assert {r.job_group for r in pilot_jobs(f.ledger, pilot)} == {"g"}  # each run carries its group
    d = learned.group("g")
    assert d.runtime == "learned from 5 runs: median 100 s"
    assert (d.placements[0].into_existing, d.pilots, learned.site("a").submit) == (1, 0, 0)


def test_without_learning_the_site_default_starts_another_pilot(tmp_path: Path) -> None:
    f, unlearned = _history(tmp_path / "default", learn=False)
    assert {r.job_group for p in f.ledger.pilots(factory="rt") for r in pilot_jobs(f.ledger, p.pilot_id)} == {None}
    d = unlearned.group("g")
    assert d.runtime == "site default (job_runtime 1800 s)"  # 1260 s left is too little for 1800 s
    assert (d.placements[0].into_existing, d.pilots, unlearned.site("a").submit) == (0, 1, 1)


def test_the_learner_reads_the_ledger_again_only_when_runs_ended(tmp_path: Path) -> None:
    led = Ledger.open(f"sqlite:///{tmp_path}/l.sqlite")
    reads: list[float] = []

    def read(ledger: Ledger, factory: str, *, since: float, last: int, limit: int) -> list[tuple[str, float, float]]:
        reads.append(since)
        return [("g", 0.0, 60.0)] * 3

    learner = RuntimeLearner(refresh_s=300.0, read=read)
    learner.refresh(led, "f", T0)  # the first cycle reads
    learner.refresh(led, "f", T0 + 60)  # nothing ended: no read
    learner.dirty = True
    learner.refresh(led, "f", T0 + 120)  # too soon after the last read
    learner.refresh(led, "f", T0 + 400)  # runs ended, and 300 s passed
    learner.refresh(led, "f", T0 + 460)
    assert len(reads) == 2 and reads[1] == T0 + 400 - learner.window_s
    assert learner.apply([JobGroup("g", 1)])[0].learned_runs == 3
