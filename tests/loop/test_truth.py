"""End times from the pool and the site, not from the cycle that noticed (issue 18, truth).

The real-pool check (HTCondor + Slurm, the factory stopped and restarted in the middle) is
tests/reliability/test_report_accuracy.py; here the same rules with fakes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.loop.fakes import Clock, History, Jobs

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.ledger import Ledger, PilotEvent, PilotState, Update
from campus_factory.ledger.accounting import account, pilot_jobs
from campus_factory.loop.factory import Factory
from campus_factory.loop.usage import MAX_UNANSWERED, JobTracker
from campus_factory.pool.htcondor import FinishedRun, RunningJob, run_end
from campus_factory.providers.base import JobState
from campus_factory.providers.fake import FakeProvider


def _ledger(tmp_path: Path, name: str = "l") -> Ledger:
    led = Ledger.open(f"sqlite:///{tmp_path}/{name}.sqlite")
    led.record_requests(
        factory="f", site="s", submission_id="sub", requests=[PilotRequest("p1", 1, 100, 100, 0, 3600.0)], now=0.0
    )
    return led


def test_a_run_is_closed_at_its_completion_date_not_at_the_cycle(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    jobs = Jobs()
    run = RunningJob("p1", "sched#1.0#1", "alice", "transparent", 100.0, 2)
    jobs.running = [run]
    tracker = JobTracker(jobs)
    tracker.update(led, "f", 110.0)
    jobs.running = []
    jobs.ends = {("p1", "sched#1.0#1", 100.0): 146.0}  # it completed 46 s after it began
    tracker.update(led, "f", 170.0)  # the next cycle, 24 s later
    (r,) = pilot_jobs(led, "p1")
    assert r.ended_at == 146.0


def test_a_run_its_job_ad_shows_still_running_stays_open(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    jobs = Jobs()
    jobs.running = [RunningJob("p1", "sched#1.0#1", "alice", "transparent", 100.0, 1)]
    tracker = JobTracker(jobs)
    tracker.update(led, "f", 110.0)
    jobs.running = []  # the collector missed its slot this time
    jobs.ends = {("p1", "sched#1.0#1", 100.0): False}
    tracker.update(led, "f", 170.0)
    assert [r.ended_at for r in pilot_jobs(led, "p1")] == [None]
    jobs.ends = {}  # nobody can tell: closed at the cycle, as before
    tracker.update(led, "f", 230.0)
    assert [r.ended_at for r in pilot_jobs(led, "p1")] == [230.0]


def test_a_run_whose_schedd_does_not_answer_stays_open_until_it_does(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    jobs = Jobs()
    key = ("p1", "sched#1.0#1", 100.0)
    jobs.running = [RunningJob(*key[:2], "alice", "transparent", 100.0, 1)]
    tracker = JobTracker(jobs)
    tracker.update(led, "f", 110.0)
    jobs.running = []
    jobs.ends = {key: None}  # the schedd timed out (a loaded host)
    tracker.update(led, "f", 170.0)
    assert [r.ended_at for r in pilot_jobs(led, "p1")] == [None]
    jobs.ends = {key: 146.0}
    tracker.update(led, "f", 230.0)
    assert [r.ended_at for r in pilot_jobs(led, "p1")] == [146.0]


def test_a_schedd_that_never_answers_closes_its_runs_after_some_cycles(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    jobs = Jobs()
    key = ("p1", "sched#1.0#1", 100.0)
    jobs.running = [RunningJob(*key[:2], "alice", "transparent", 100.0, 1)]
    tracker = JobTracker(jobs)
    tracker.update(led, "f", 110.0)
    jobs.running, jobs.ends = [], {key: None}
    t = 110.0
    while pilot_jobs(led, "p1")[0].ended_at is None:
        t += 60.0
        tracker.update(led, "f", t)
        assert t < 110.0 + 60.0 * (MAX_UNANSWERED + 1)
    assert pilot_jobs(led, "p1")[0].ended_at == 110.0 + 60.0 * MAX_UNANSWERED


def test_runs_that_ended_while_the_factory_was_down_close_at_their_real_end(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    jobs = Jobs()
    jobs.running = [RunningJob("p1", "sched#1.0#1", "alice", "transparent", 100.0, 1)]
    JobTracker(jobs).update(led, "f", 110.0)
    # the factory stops; the job ends at 146; a new process starts at 1000
    jobs.running = []
    jobs.ends = {("p1", "sched#1.0#1", 100.0): 146.0}
    JobTracker(jobs).update(led, "f", 1000.0)
    assert [r.ended_at for r in pilot_jobs(led, "p1")] == [146.0]


def test_a_stale_slot_ad_of_an_ended_pilot_does_not_keep_its_run_open(tmp_path: Path) -> None:
    """A startd killed with its batch job leaves its slot ads in the collector until they expire;
    the run on a pilot the ledger has ended is closed from the job's ad, and accounting never
    counts a run past its pilot's end (seen in the real-pool test: one 90 s run counted 176 s)."""
    led = _ledger(tmp_path)
    led.apply([Update("p1", PilotEvent.STARTED)], 90.0)
    jobs = Jobs()
    run = RunningJob("p1", "sched#1.0#1", "alice", "transparent", 100.0, 1)
    jobs.running = [run]
    JobTracker(jobs).update(led, "f", 110.0, live={"p1"})
    led.apply([Update("p1", PilotEvent.COMPLETED)], 200.0)  # the pilot ended while the factory was down
    jobs.ends = {("p1", "sched#1.0#1", 100.0): 190.0}
    tracker = JobTracker(jobs)
    tracker.update(led, "f", 1000.0, live=set())  # its slot ad is still listed
    assert [r.ended_at for r in pilot_jobs(led, "p1")] == [190.0]
    assert tracker.busy_pilots == frozenset()


def test_accounting_ends_an_open_run_at_its_pilots_end(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    led.apply([Update("p1", PilotEvent.STARTED)], 90.0)
    JobTracker(Jobs()).update(led, "f", 95.0)
    jobs = Jobs()
    jobs.running = [RunningJob("p1", "sched#1.0#1", "alice", "transparent", 100.0, 1)]
    JobTracker(jobs).update(led, "f", 110.0)
    led.apply([Update("p1", PilotEvent.COMPLETED)], 200.0)
    acc = account(led, since=0.0, until=2000.0, now=2000.0, factory="f")
    assert acc.total.used_core_hours * 3600 == 100.0  # 100 to 200, not to now
    assert acc.total.delivered_core_hours * 3600 == 110.0


def test_a_job_that_began_and_ended_while_the_factory_was_down_is_recorded(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    led.apply([Update("p1", PilotEvent.STARTED)], 90.0)
    jobs = History()
    seen = RunningJob("p1", "sched#1.0#1", "alice", "transparent", 100.0, 1)
    jobs.running = [seen]
    JobTracker(jobs).update(led, "f", 110.0, live={"p1"}, since=90.0)
    # the factory stops at 110; job 1 ends at 150, job 2 runs 160-200, a stranger's job on
    # a pilot of no one we know; the factory starts again at 1000
    jobs.running = []
    jobs.ends = {("p1", "sched#1.0#1", 100.0): 150.0}
    unseen = RunningJob("p1", "sched#2.0#1", "bob", "no-cloud", 160.0, 2)
    stranger = RunningJob("px", "sched#3.0#1", "eve", "transparent", 160.0, 1)
    jobs.finished = [FinishedRun(seen, 150.0), FinishedRun(unseen, 200.0), FinishedRun(stranger, 200.0)]
    tracker = JobTracker(jobs)
    tracker.update(led, "f", 1000.0, live={"p1"}, since=90.0)
    assert jobs.since[-1] == 90.0  # a new process first looks back to the oldest live pilot's start
    runs = pilot_jobs(led, "p1")
    assert [(r.job_id, r.started_at, r.ended_at, r.cpus, r.owner) for r in runs] == [
        ("sched#1.0#1", 100.0, 150.0, 1, "alice"),
        ("sched#2.0#1", 160.0, 200.0, 2, "bob"),
    ]
    assert pilot_jobs(led, "px") == []
    # the next look starts where this one ended, and a run already recorded is not recorded twice
    assert tracker.update(led, "f", 1060.0, live={"p1"}, since=90.0) == 0
    assert jobs.since[-1] == 1000.0
    assert len(pilot_jobs(led, "p1")) == 2


def test_a_failed_history_read_is_tried_again_from_the_same_time(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    jobs = History()
    tracker = JobTracker(jobs)
    tracker.update(led, "f", 100.0, live={"p1"}, since=50.0)
    jobs.fail = True
    assert tracker.update(led, "f", 160.0, live={"p1"}) == 0
    jobs.fail = False
    jobs.finished = [FinishedRun(RunningJob("p1", "sched#4.0#1", "al", "transparent", 110.0, 1), 150.0)]
    assert tracker.update(led, "f", 220.0, live={"p1"}) == 1
    assert jobs.since == [50.0, 100.0]
    assert [r.ended_at for r in pilot_jobs(led, "p1")] == [150.0]


def test_run_end_reads_the_job_ad() -> None:
    assert run_end({"CompletionDate": 150, "JobStatus": 4}, 100.0) == 150.0
    assert run_end({"CompletionDate": 0, "LastVacateTime": 140, "JobStatus": 1}, 100.0) == 140.0  # evicted
    assert run_end({"JobStatus": 2, "JobCurrentStartDate": 100}, 100.0) is False  # still running there
    assert run_end({"JobStatus": 2, "JobCurrentStartDate": 300, "LastVacateTime": 200}, 100.0) == 200.0
    assert run_end({"CompletionDate": 50}, 100.0) is None  # before the run began: not this run
    assert run_end(None, 100.0) is None


def test_a_pilot_that_ended_between_cycles_ends_at_the_sites_time(tmp_path: Path) -> None:
    clock = Clock(1_000.0)
    cfg = parse_config(
        {
            "factory": {"name": "t", "ledger_url": f"sqlite:///{tmp_path}/t.sqlite"},
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "slot": {"cpus": 4, "memory_mb": 1000},
                    "limits": {"max_pilots": 1, "max_queued": 1, "max_submit_per_cycle": 1},
                }
            ],
        }
    )
    prov = FakeProvider("a", clock=clock, start_delay=10)
    f = Factory(
        cfg, Ledger.open(cfg.factory.ledger_url), StaticDemand([JobGroup("g", 1, cpus=4, memory_mb=100)]), {"a": prov}
    )
    f.clock = clock
    asyncio.run(f.run_once())  # submitted at 1000, starts at 1010 at the site
    clock.t = 1_060.0
    asyncio.run(f.run_once())  # seen running at 1060
    (p,) = f.ledger.live_pilots("t")
    assert p.state is PilotState.RUNNING and p.started_at == 1_010.0
    clock.t = 1_100.0
    prov.finish(p.job_id or "", JobState.COMPLETED)  # it leaves at 1100
    clock.t = 1_160.0
    asyncio.run(f.run_once())  # noticed at 1160
    ended = f.ledger.pilot(p.pilot_id)
    assert ended is not None and ended.state is PilotState.ENDED and ended.ended_at == 1_100.0
    acct = account(f.ledger, since=0.0, until=2_000.0, now=2_000.0, factory="t")
    assert abs(acct.total.delivered_core_hours - 4 * 90 / 3600) < 1e-9  # 1010..1100, 4 cores


def test_a_pilot_joins_when_its_startd_started_not_when_the_cycle_saw_it(tmp_path: Path) -> None:
    from campus_factory.pool.fake import FakePool, pilot_ad

    clock = Clock(1_000.0)
    cfg = parse_config(
        {
            "factory": {"name": "t", "ledger_url": f"sqlite:///{tmp_path}/t.sqlite"},
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "slot": {"cpus": 4, "memory_mb": 1000},
                    "limits": {"max_pilots": 1, "max_queued": 1, "max_submit_per_cycle": 1},
                }
            ],
        }
    )
    pool = FakePool([])
    demand = StaticDemand([JobGroup("g", 1, cpus=4, memory_mb=100)])
    prov = FakeProvider("a", clock=clock, start_delay=10)
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"a": prov}, pool=pool, clock=clock)
    asyncio.run(f.run_once())
    (p,) = f.ledger.live_pilots("t")
    pool.ads = [pilot_ad("a", p.pilot_id, factory="t", DaemonStartTime=1_025)]  # joined at 1025
    clock.t = 1_060.0
    asyncio.run(f.run_once())
    joined = f.ledger.pilot(p.pilot_id)
    assert joined is not None and joined.state is PilotState.JOINED
    assert (joined.started_at, joined.joined_at) == (1_010.0, 1_025.0)
