"""Runtimes learned by the loop: a job seen idle in a group records its run with that group, the
group's median runtime reaches the planner, and it changes what the planner provisions."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.loop.fakes import Clock, Jobs

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.ledger import Ledger
from campus_factory.ledger.accounting import JobRun, pilot_jobs, record_pilot_jobs
from campus_factory.ledger.runtimes import recent_group_runs
from campus_factory.loop.factory import Factory
from campus_factory.loop.runtimes import RunGroups, RuntimeLearner
from campus_factory.loop.usage import JobTracker
from campus_factory.planner import Plan
from campus_factory.planner.runtime import median_runtimes
from campus_factory.pool.fake import FakePool, pilot_ad
from campus_factory.pool.htcondor import RunningJob
from campus_factory.providers.fake import FakeProvider

T0 = 1_000_000.0


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


RUNS = st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 2000), st.integers(1, 600)), min_size=1, max_size=50)
_LEDGER: list[Ledger] = []  # one migrated ledger for every example (each writes as a factory of its own)


@settings(max_examples=25, deadline=None)
@given(runs=RUNS, window=st.integers(100, 3000), limit=st.integers(3, 24), generations=st.lists(st.integers(0, 1)))
def test_reading_again_only_the_groups_whose_runs_ended_learns_what_reading_all_does(
    runs: list[tuple[str, int, int]], window: int, limit: int, generations: list[int]
) -> None:
    """Each 100 s cycle records the runs that started (open) and closes those that ended (at their
    real end, often before the cycle: ties and late ends included); a learner told which groups'
    runs ended learns what one reading every group each time does, through the window's edge,
    the row limit and reloads (another factory may have written)."""
    if not _LEDGER:
        _LEDGER.append(Ledger.open("sqlite:///:memory:"))
    led, factory = _LEDGER[0], f"f{uuid.uuid4().hex[:8]}"
    pilot = f"{factory}-p"
    led.record_requests(
        factory=factory, site="s", submission_id=factory, requests=[PilotRequest(pilot, 1, 1, 1, 0, 1e6)], now=T0
    )
    jobs = [
        JobRun(pilot, f"s#{i}.0#0", "u", "transparent", T0 + a, T0 + a + d, 1, g) for i, (g, a, d) in enumerate(runs)
    ]
    learner, every = (RuntimeLearner(window_s=float(window), limit=limit, refresh_s=0.0, last=5) for _ in range(2))
    generation = 0
    for cycle in range(1, 28):
        now, before = T0 + 100.0 * cycle, T0 + 100.0 * (cycle - 1)
        opened = [replace(j, ended_at=None) for j in jobs if before < j.started_at <= now]
        closed = [j for j in jobs if before < (j.ended_at or 0.0) <= now]
        groups: set[str] = set()
        if record_pilot_jobs(led, opened + closed, ended_groups=groups) and closed:
            learner.ended(groups)
            every.dirty = True  # as the loop did before it told which groups
        if generations and cycle % 5 == 0:
            generation += generations[cycle % len(generations)]
        learner.refresh(led, factory, now, generation=generation)
        every.refresh(led, factory, now)
        assert learner.learned == every.learned


def test_when_the_runs_kept_reach_the_row_limit_every_group_is_read_again(tmp_path: Path) -> None:
    led = Ledger.open(f"sqlite:///{tmp_path}/l.sqlite")
    led.record_requests(factory="f", site="s", submission_id="s", requests=[PilotRequest("p", 1, 1, 1, 0, 1e6)], now=T0)

    def run(n: int, group: str, end: float, seconds: float) -> JobRun:
        return JobRun("p", f"s#{n}.0#0", "u", "transparent", T0 + end - seconds, T0 + end, 1, group)

    record_pilot_jobs(led, [run(i, "a", 60 + 10 * i, 100 + i) for i in range(5)])
    record_pilot_jobs(led, [run(10 + i, "b", 10 + 10 * i, 200 + i) for i in range(5)])
    reads: list[object] = []

    def read(*args: object, **kw: object) -> list[tuple[str, float, float]]:
        reads.append(kw.get("groups"))
        return recent_group_runs(*args, **kw)  # type: ignore[arg-type]

    learner = RuntimeLearner(limit=6, last=5, refresh_s=0.0, read=read)
    learner.refresh(led, "f", T0 + 200)  # the newest 6: a's 5 and b's newest
    assert learner.learned["b"] == (1, 204.0)
    groups: set[str] = set()
    record_pilot_jobs(led, [run(20, "b", 55, 300)], ended_groups=groups)  # closed late: ended before a's
    learner.ended(groups)
    learner.refresh(led, "f", T0 + 300)
    assert reads == [None, {"b"}, None]  # b's 5 and a's 5 reach the limit: all are read again
    assert learner.learned == median_runtimes(recent_group_runs(led, "f", since=0.0, last=5, limit=6), last=5)
    assert learner.learned["b"] == (1, 300.0)
