"""Tests of the ledger store on a temporary SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from campus_factory.domain import PilotRequest
from campus_factory.errors import InvalidTransition, LedgerError
from campus_factory.ledger import (
    CycleRecord,
    Ledger,
    PilotEvent,
    PilotState,
    Update,
)

E, S = PilotEvent, PilotState


def req(pilot_id: str, cpus: int = 2) -> PilotRequest:
    return PilotRequest(pilot_id, cpus=cpus, memory_mb=4000, disk_mb=1000, gpus=0, walltime_s=3600.0)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(f"sqlite:///{tmp_path}/sub/ledger.sqlite")
    yield led
    led.close()


def seed(ledger: Ledger, *ids: str, site: str = "alpha", factory: str = "campus", now: float = 100.0) -> None:
    ledger.record_requests(factory=factory, site=site, submission_id="sub1", requests=[req(i) for i in ids], now=now)


def row_count(ledger: Ledger, table: str) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# -- opening ------------------------------------------------------------------------------------
def test_open_runs_migrations_and_creates_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "ledger.sqlite"
    led = Ledger.open(f"sqlite:///{path}")
    try:
        assert path.exists()
        tables = set(inspect(led.engine).get_table_names())
        assert {"pilots", "transitions", "cycles", "alembic_version"} <= tables
        with led.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        led.close()


def test_open_twice_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.sqlite"
    first = Ledger.open(url)
    seed(first, "p1")
    first.close()
    second = Ledger.open(url)
    try:
        assert [p.pilot_id for p in second.pilots()] == ["p1"]
        assert row_count(second, "alembic_version") == 1
    finally:
        second.close()


def test_open_without_migrate_has_no_tables(tmp_path: Path) -> None:
    led = Ledger.open(f"sqlite:///{tmp_path}/raw.sqlite", migrate=False)
    try:
        assert inspect(led.engine).get_table_names() == []
    finally:
        led.close()


def test_open_bad_url_raises_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger.open(f"sqlite:///{blocker}/sub/ledger.sqlite")


# -- record_requests ------------------------------------------------------------------------------
def test_record_requests_writes_requested_rows(ledger: Ledger) -> None:
    ledger.record_requests(
        factory="campus",
        site="alpha",
        submission_id="s42",
        requests=[req("p1", cpus=8), req("p2", cpus=8)],
        now=50.0,
        detail="submission s42",
    )
    pilots = {p.pilot_id: p for p in ledger.pilots()}
    assert set(pilots) == {"p1", "p2"}
    p1 = pilots["p1"]
    assert p1.state is S.REQUESTED
    assert (p1.factory, p1.site, p1.submission_id) == ("campus", "alpha", "s42")
    assert (p1.cpus, p1.memory_mb, p1.disk_mb, p1.gpus, p1.walltime_s) == (8, 4000, 1000, 0, 3600.0)
    assert p1.created_at == p1.state_since == 50.0
    assert p1.job_id is None and p1.started_at is None and p1.ended_at is None
    assert [pilots["p1"].array_index, pilots["p2"].array_index] == [0, 1]
    for pid in ("p1", "p2"):
        (tr,) = ledger.transitions(pid)
        assert (tr.from_state, tr.to_state, tr.event, tr.detail, tr.at) == (
            None,
            S.REQUESTED,
            "request",
            "submission s42",
            50.0,
        )
    assert row_count(ledger, "transitions") == 2


def test_single_request_has_no_array_index(ledger: Ledger) -> None:
    seed(ledger, "solo")
    record = ledger.pilot("solo")
    assert record is not None and record.array_index is None


def test_duplicate_request_rolls_back(ledger: Ledger) -> None:
    seed(ledger, "p1")
    with pytest.raises(LedgerError, match="cannot record submission"):
        seed(ledger, "p2", "p1")
    assert ledger.pilot("p2") is None
    assert row_count(ledger, "transitions") == 1


# -- apply --------------------------------------------------------------------------------------
def test_apply_writes_one_transition_per_change(ledger: Ledger) -> None:
    seed(ledger, "p1")
    changed = ledger.apply([Update("p1", E.SUBMITTED, "job 7", job_id="7")], now=110.0)
    assert [(c.pilot_id, c.state, c.job_id, c.state_since) for c in changed] == [("p1", S.QUEUED, "7", 110.0)]
    changed = ledger.apply([Update("p1", E.STARTED, "RUNNING")], now=120.0)
    assert changed[0].started_at == 120.0
    changed = ledger.apply([Update("p1", E.JOINED)], now=130.0)
    assert changed[0].joined_at == 130.0 and changed[0].started_at == 120.0
    transitions = ledger.transitions("p1")
    assert [(t.from_state, t.to_state, t.event, t.at) for t in transitions] == [
        (None, S.REQUESTED, "request", 100.0),
        (S.REQUESTED, S.QUEUED, "submitted", 110.0),
        (S.QUEUED, S.RUNNING, "started", 120.0),
        (S.RUNNING, S.JOINED, "joined", 130.0),
    ]
    assert transitions[1].detail == "job 7"


def test_apply_ignores_no_op_events(ledger: Ledger) -> None:
    seed(ledger, "p1")
    ledger.apply([Update("p1", E.SUBMITTED, job_id="7")], now=110.0)
    before = row_count(ledger, "transitions")
    changed = ledger.apply([Update("p1", E.PENDING, "still waiting"), Update("p1", E.PENDING)], now=200.0)
    assert changed == []
    assert row_count(ledger, "transitions") == before
    record = ledger.pilot("p1")
    assert record is not None and record.state_since == 110.0 and record.reason == ""


def test_apply_same_state_with_new_job_id_is_recorded(ledger: Ledger) -> None:
    seed(ledger, "p1")
    ledger.apply([Update("p1", E.SUBMITTED, job_id="7")], now=110.0)
    changed = ledger.apply([Update("p1", E.PENDING, "adopted", job_id="8")], now=150.0)
    assert len(changed) == 1
    assert changed[0].job_id == "8"
    assert changed[0].state is S.QUEUED
    assert changed[0].state_since == 110.0  # the state did not change
    last = ledger.transitions("p1")[-1]
    assert (last.from_state, last.to_state, last.event) == (S.QUEUED, S.QUEUED, "pending")


def test_apply_terminal_sets_ended_at_exit_code_and_reason(ledger: Ledger) -> None:
    seed(ledger, "p1", "p2")
    ledger.apply([Update("p1", E.STARTED), Update("p2", E.SUBMITTED, job_id="9")], now=110.0)
    changed = ledger.apply(
        [
            Update("p1", E.FAILED, "FAILED, exit 143", exit_code=143),
            Update("p2", E.COMPLETED, "done"),
        ],
        now=300.0,
    )
    by_id = {c.pilot_id: c for c in changed}
    assert by_id["p1"].state is S.FAILED
    assert by_id["p1"].ended_at == 300.0
    assert by_id["p1"].exit_code == 143
    assert by_id["p1"].reason == "FAILED, exit 143"
    assert by_id["p1"].started_at == 110.0
    assert by_id["p2"].state is S.ENDED
    assert by_id["p2"].exit_code is None
    assert by_id["p2"].started_at is None


def test_exit_code_ignored_while_live(ledger: Ledger) -> None:
    seed(ledger, "p1")
    (rec,) = ledger.apply([Update("p1", E.STARTED, exit_code=3)], now=110.0)
    assert rec.exit_code is None and rec.ended_at is None


def test_apply_unknown_pilot_rolls_back_the_whole_batch(ledger: Ledger) -> None:
    seed(ledger, "p1")
    before = row_count(ledger, "transitions")
    with pytest.raises(LedgerError, match="ghost"):
        ledger.apply([Update("p1", E.SUBMITTED, job_id="7"), Update("ghost", E.STARTED)], now=110.0)
    record = ledger.pilot("p1")
    assert record is not None
    assert record.state is S.REQUESTED
    assert record.job_id is None
    assert row_count(ledger, "transitions") == before


def test_apply_invalid_transition_rolls_back(ledger: Ledger) -> None:
    seed(ledger, "p1", "p2")
    ledger.apply([Update("p2", E.CANCELLED)], now=105.0)
    before = row_count(ledger, "transitions")
    with pytest.raises(InvalidTransition):
        ledger.apply([Update("p1", E.STARTED), Update("p2", E.STARTED)], now=110.0)
    p1 = ledger.pilot("p1")
    assert p1 is not None and p1.state is S.REQUESTED and p1.started_at is None
    assert row_count(ledger, "transitions") == before


def test_apply_empty_batch(ledger: Ledger) -> None:
    assert ledger.apply([], now=1.0) == []


# -- reading ------------------------------------------------------------------------------------
def test_counts_and_live_pilots(ledger: Ledger) -> None:
    seed(ledger, "a1", "a2", "a3", site="alpha", now=100.0)
    seed(ledger, "b1", site="beta", now=101.0)
    seed(ledger, "o1", site="alpha", factory="other", now=102.0)
    ledger.apply(
        [Update("a1", E.STARTED), Update("a2", E.SUBMIT_FAILED, "refused"), Update("b1", E.PENDING)],
        now=110.0,
    )
    assert ledger.counts("campus") == {
        ("alpha", S.RUNNING): 1,
        ("alpha", S.FAILED): 1,
        ("alpha", S.REQUESTED): 1,
        ("beta", S.QUEUED): 1,
    }
    assert ledger.counts("other") == {("alpha", S.REQUESTED): 1}
    assert ledger.counts("nobody") == {}
    assert {p.pilot_id for p in ledger.live_pilots("campus")} == {"a1", "a3", "b1"}
    assert {p.pilot_id for p in ledger.live_pilots("campus", "alpha")} == {"a1", "a3"}
    assert ledger.live_pilots("campus", "gamma") == []


def test_pilots_filters_order_and_limit(ledger: Ledger) -> None:
    seed(ledger, "old", now=1.0)
    seed(ledger, "new", now=2.0)
    assert [p.pilot_id for p in ledger.pilots()] == ["new", "old"]
    assert [p.pilot_id for p in ledger.pilots(limit=1)] == ["new"]
    assert ledger.pilots(states=[S.RUNNING]) == []
    assert ledger.pilot("missing") is None


def test_cycles(ledger: Ledger) -> None:
    assert ledger.last_cycle("campus") is None
    first = CycleRecord("campus", 10.0, 0.5, False, 2, 1, 0, {"sites": [{"site": "alpha", "submit": 2}]})
    second = CycleRecord("campus", 70.0, 0.25, True, 0, 0, 3, {"notes": ["x"]})
    other = CycleRecord("other", 80.0, 0.1, False, 0, 0, 0, {})
    ledger.record_cycle(first)
    assert ledger.last_cycle("campus") == first
    ledger.record_cycle(second)
    ledger.record_cycle(other)
    assert ledger.last_cycle("campus") == second
    assert ledger.last_cycle("other") == other
    assert row_count(ledger, "cycles") == 3
