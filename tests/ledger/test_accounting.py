"""Accounting over a ledger filled by hand (tests/ledger/scenario.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from tests.ledger.scenario import COSTS, FACTORY, T0, UNTIL, H, build

from campus_factory.domain import PilotRequest
from campus_factory.ledger import Ledger, PilotEvent, Update
from campus_factory.ledger.accounting import (
    NO_JOBS,
    AccountingRow,
    JobRun,
    account,
    pilot_jobs,
    record_pilot_jobs,
    state_history,
)

E = PilotEvent


def numbers(row: AccountingRow) -> tuple[object, ...]:
    return (
        row.group,
        pytest.approx(row.delivered_core_hours),
        pytest.approx(row.used_core_hours),
        pytest.approx(row.wasted_core_hours),
        row.pilots_requested,
        row.pilots_started,
        row.pilots_failed,
        pytest.approx(row.spend),
    )


@pytest.fixture
def filled(ledger: Ledger) -> Ledger:
    build(ledger)
    return ledger


def test_by_site(filled: Ledger) -> None:
    acc = account(filled, since=T0, until=UNTIL, costs=COSTS, factory=FACTORY, now=UNTIL + 10 * H)
    assert [numbers(r) for r in acc.rows] == [
        ("alpha", 28, 20, 8, 3, 2, 1, 1.40),
        ("beta", 5, 2, 3, 1, 1, 1, 0.50),
    ]
    assert numbers(acc.total) == ("total", 33, 22, 11, 4, 3, 2, 1.90)
    assert acc.rows[0].waste_pct == pytest.approx(100 * 8 / 28)
    assert acc.rows[1].waste_pct == pytest.approx(60.0)
    assert acc.total.waste_pct == pytest.approx(100 / 3)
    assert acc.as_dict()["total"]["delivered_core_hours"] == pytest.approx(33)


def test_by_owner_shares_each_pilot_by_use(filled: Ledger) -> None:
    acc = account(filled, since=T0, until=UNTIL, by="owner", costs=COSTS, factory=FACTORY, now=UNTIL)
    assert [numbers(r) for r in acc.rows] == [
        (NO_JOBS, 1, 0, 1, 2, 1, 2, 0.10),
        ("alice", 20, 12, 8, 2, 2, 0, 1.00),
        ("bob", 12, 10, 2, 1, 1, 0, 0.80),
    ]
    assert numbers(acc.total) == ("total", 33, 22, 11, 4, 3, 2, 1.90)


def test_by_route(filled: Ledger) -> None:
    acc = account(filled, since=T0, until=UNTIL, by="route", costs=COSTS, factory=FACTORY, now=UNTIL)
    rows = {r.group: r for r in acc.rows}
    assert set(rows) == {NO_JOBS, "no-cloud", "transparent"}
    assert numbers(rows["transparent"])[1:4] == (16, 16, 0)
    assert numbers(rows["no-cloud"])[1:4] == (16, 6, 10)
    assert sum(r.delivered_core_hours for r in acc.rows) == pytest.approx(acc.total.delivered_core_hours)


def test_window_clips_and_open_intervals_end_at_now(filled: Ledger) -> None:
    # [2 h, 4.5 h): a1 runs 2-4.5 (10), a2 runs 2-3 and 4-4.5 (6), b2 3-3.5 (1)
    acc = account(filled, since=T0 + 2 * H, until=T0 + 4.5 * H, costs=COSTS, factory=FACTORY, now=UNTIL)
    assert [numbers(r) for r in acc.rows] == [
        ("alpha", 16, 10 + 1, 5, 0, 1, 0, 0.80),
        ("beta", 1, 0, 1, 1, 1, 1, 0.10),
    ]
    # the window reaches past now: a2 and j3 stop at now (5 h)
    acc = account(filled, since=T0 + 4 * H, until=T0 + 8 * H, factory=FACTORY, now=T0 + 5 * H)
    (alpha,) = acc.rows
    assert (alpha.delivered_core_hours, alpha.used_core_hours) == pytest.approx((8.0, 6.0))


def test_without_factory_counts_every_factory(filled: Ledger) -> None:
    acc = account(filled, since=T0, until=UNTIL, now=UNTIL)
    assert acc.total.delivered_core_hours == pytest.approx(33 + 8 * 6)
    assert acc.total.spend == 0


def test_retiring_counts_only_after_running(ledger: Ledger) -> None:
    reqs = [PilotRequest(p, cpus=1, memory_mb=1, disk_mb=1, gpus=0, walltime_s=H) for p in ("r1", "r2")]
    ledger.record_requests(factory=FACTORY, site="alpha", submission_id="s", requests=reqs, now=T0)
    ledger.apply([Update("r1", E.STARTED), Update("r2", E.SUBMITTED, job_id="9")], T0 + H)
    ledger.apply([Update("r1", E.LEAVE), Update("r2", E.LEAVE)], T0 + 2 * H)
    ledger.apply([Update("r1", E.COMPLETED), Update("r2", E.CANCELLED)], T0 + 3 * H)
    acc = account(ledger, since=T0, until=T0 + 4 * H, factory=FACTORY, now=T0 + 4 * H)
    assert acc.total.delivered_core_hours == pytest.approx(2.0)  # r1: 1 h running + 1 h retiring
    assert acc.total.waste_pct == pytest.approx(100.0)


def test_empty_ledger_and_bad_arguments(ledger: Ledger) -> None:
    acc = account(ledger, since=T0, until=UNTIL, now=UNTIL)
    assert acc.rows == ()
    assert numbers(acc.total) == ("total", 0, 0, 0, 0, 0, 0, 0)
    assert acc.total.waste_pct is None
    with pytest.raises(ValueError, match="empty"):
        account(ledger, since=UNTIL, until=T0)
    with pytest.raises(ValueError, match="group by"):
        account(ledger, since=T0, until=UNTIL, by="user")  # type: ignore[arg-type]


def test_record_pilot_jobs_is_idempotent_and_closes_runs(filled: Ledger) -> None:
    open_run = JobRun("a2", "schedd#3.0", "alice", "no-cloud", T0 + 4 * H, None, 2)
    assert record_pilot_jobs(filled, [open_run]) == 0
    closed = JobRun("a2", "schedd#3.0", "alice", "no-cloud", T0 + 4 * H, T0 + 5 * H, 2)
    assert record_pilot_jobs(filled, [closed, closed]) == 1
    assert pilot_jobs(filled, "a2") == [closed]
    acc = account(filled, since=T0, until=UNTIL, factory=FACTORY, now=UNTIL)
    assert acc.rows[0].used_core_hours == pytest.approx(16 + 2)


def test_state_history(filled: Ledger) -> None:
    hist = state_history(filled, since=T0, until=T0 + 6 * H, points=7, factory=FACTORY)
    assert len(hist["times"]) == 7 and hist["times"][0] == T0 and hist["times"][-1] == T0 + 6 * H
    states = hist["states"]
    assert set(states) == {"requested", "queued", "running", "joined", "retiring"}
    #             0h  1h  2h  3h  4h  5h  6h
    assert states["queued"] == [2, 1, 0, 1, 0, 0, 0]
    assert states["running"] == [1, 2, 1, 1, 1, 0, 0]
    assert states["joined"] == [0, 0, 1, 1, 1, 1, 1]
    assert states["requested"] == [0, 0, 0, 0, 0, 0, 0]
    alpha = state_history(filled, since=T0, until=T0 + 6 * H, points=7, factory=FACTORY, site="alpha")
    assert alpha["states"]["running"] == [0, 1, 1, 0, 1, 0, 0]
    with pytest.raises(ValueError):
        state_history(filled, since=T0, until=T0, points=7)


def test_by_schedd_counts_the_runs_flocked_in_from_each_schedd(filled: Ledger) -> None:
    flocked = "campus-schedd@campus.example.edu#7.0#1767225600"  # a GlobalJobId of a campus schedd
    record_pilot_jobs(filled, [JobRun("a1", flocked, "carol", "transparent", T0 + 1 * H, T0 + 2 * H, 1)])
    acc = account(filled, since=T0, until=UNTIL, by="schedd", costs=COSTS, factory=FACTORY, now=UNTIL)
    rows = {r.group: r for r in acc.rows}
    assert rows["campus-schedd@campus.example.edu"].job_runs == 1
    assert rows["campus-schedd@campus.example.edu"].used_core_hours == pytest.approx(1)
    assert rows["schedd"].job_runs == 4
    assert acc.total.job_runs == 5
    assert sum(r.delivered_core_hours for r in acc.rows) == pytest.approx(acc.total.delivered_core_hours)
    by_site = account(filled, since=T0, until=UNTIL, costs=COSTS, factory=FACTORY, now=UNTIL)
    assert by_site.total.job_runs == 5 and sum(r.job_runs for r in by_site.rows) == 5
    # a window that holds none of the runs counts none
    late = account(filled, since=UNTIL + 100 * H, until=UNTIL + 101 * H, by="schedd", factory=FACTORY, now=UNTIL)
    assert late.total.job_runs == 0
