"""Job runs recorded with their job group come back as that group's recent runs, on SQLite and
PostgreSQL; the planner's median of them is the learned runtime."""

from __future__ import annotations

from campus_factory.domain import PilotRequest
from campus_factory.ledger import Ledger
from campus_factory.ledger.accounting import JobRun, pilot_jobs, record_pilot_jobs
from campus_factory.ledger.runtimes import recent_group_runs
from campus_factory.planner.runtime import median_runtimes

T0 = 1_767_225_600.0


def _pilots(ledger: Ledger, factory: str, *ids: str) -> None:
    ledger.record_requests(
        factory=factory,
        site="s",
        submission_id=f"sub-{factory}",
        requests=[PilotRequest(i, 1, 100, 100, 0, 86400.0) for i in ids],
        now=T0,
    )


def _run(pilot: str, n: int, start: float, seconds: float | None, group: str | None) -> JobRun:
    end = None if seconds is None else start + seconds
    return JobRun(pilot, f"sched#{n}.0#1", "alice", "transparent", start, end, 1, group)


def test_recorded_runs_give_each_groups_median(ledger: Ledger) -> None:
    _pilots(ledger, "f", "p1", "p2")
    _pilots(ledger, "other", "q1")
    runs = [_run("p1", i, T0 + 1000 * i, 100.0 + 10 * i, "short") for i in range(5)]  # 100..140 s
    runs += [_run("p2", 10 + i, T0 + 1000 * i, 3600.0, "long") for i in range(2)]
    runs += [
        _run("p2", 20, T0 + 50, None, "long"),  # still running: no runtime yet
        _run("p1", 21, T0 + 60, 999.0, None),  # a job never seen idle: no group
        _run("q1", 22, T0 + 70, 5.0, "short"),  # another factory's pilot
        _run("p1", 23, T0 - 30 * 86400, 7.0, "short"),  # ended before the window
    ]
    assert record_pilot_jobs(ledger, runs) == len(runs)
    got = recent_group_runs(ledger, "f", since=T0 - 86400)
    assert sorted(g for g, _, _ in got) == ["long", "long"] + ["short"] * 5
    assert [b for _, _, b in got] == sorted((b for _, _, b in got), reverse=True)  # newest first
    assert median_runtimes(got) == {"short": (5, 120.0), "long": (2, 3600.0)}


def test_only_the_last_runs_of_each_group_are_read(ledger: Ledger) -> None:
    _pilots(ledger, "f", "p1")
    record_pilot_jobs(ledger, [_run("p1", i, T0 + 100 * i, 50.0 if i < 30 else 80.0, "g") for i in range(40)])
    got = recent_group_runs(ledger, "f", since=T0, last=5)
    assert len(got) == 5 and {round(b - a) for _, a, b in got} == {80}
    assert len(recent_group_runs(ledger, "f", since=T0, last=50, limit=7)) == 7


def test_a_run_closed_later_keeps_its_group(ledger: Ledger) -> None:
    _pilots(ledger, "f", "p1")
    record_pilot_jobs(ledger, [_run("p1", 1, T0, None, "g")])
    record_pilot_jobs(ledger, [_run("p1", 1, T0, 42.0, None)])  # closed by a tracker that never saw it idle
    (r,) = pilot_jobs(ledger, "p1")
    assert (r.ended_at, r.job_group) == (T0 + 42.0, "g")
    assert recent_group_runs(ledger, "f", since=T0) == [("g", T0, T0 + 42.0)]


def test_recording_tells_the_groups_whose_runs_it_ended(ledger: Ledger) -> None:
    _pilots(ledger, "f", "p1")
    groups: set[str] = set()
    record_pilot_jobs(ledger, [_run("p1", 1, T0, None, "open"), _run("p1", 2, T0, 30.0, "a")], ended_groups=groups)
    assert groups == {"a"}  # an open run ends nothing
    groups.clear()
    record_pilot_jobs(ledger, [_run("p1", 1, T0, 42.0, None), _run("p1", 3, T0, 5.0, None)], ended_groups=groups)
    assert groups == {"open"}  # the group the ledger has for the closed run; a run without one adds none
    groups.clear()
    record_pilot_jobs(ledger, [_run("p1", 1, T0, 42.0, None)], ended_groups=groups)
    assert groups == set()  # nothing written


def test_the_recent_runs_of_some_groups_are_those_of_all_groups_for_them(ledger: Ledger) -> None:
    _pilots(ledger, "f", "p1")
    runs = [_run("p1", i, T0 + 10 * i, 5.0 + i % 7, "abc"[i % 3]) for i in range(60)]
    record_pilot_jobs(ledger, runs)
    every = recent_group_runs(ledger, "f", since=T0 + 100, last=8)
    some = recent_group_runs(ledger, "f", since=T0 + 100, last=8, groups=["c", "a", "zz"])
    assert sorted(some) == sorted(r for r in every if r[0] in ("a", "c")) and len(some) == 16
    assert recent_group_runs(ledger, "f", since=T0, groups=[]) == []
