"""The ledger on both backends: schema and migrations, precision, concurrent writers; plus the
PostgreSQL-only facts (a real server: marker ``postgres``)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect, text
from tests.fixtures_postgres import PostgresServer

import campus_factory.ledger.store as store_module
from campus_factory.domain import PilotRequest
from campus_factory.ledger import Ledger, PilotEvent, PilotState, Update
from campus_factory.ledger.controls import drain_site, pending_requests, set_paused, site_controls

E = PilotEvent
TABLES = {
    "pilots",
    "transitions",
    "cycles",
    "site_overrides",
    "pilot_jobs",
    "site_controls",
    "operator_requests",
    "alembic_version",
}


def req(pilot_id: str) -> PilotRequest:
    return PilotRequest(pilot_id, cpus=1, memory_mb=100, disk_mb=100, gpus=0, walltime_s=60.0)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_migrations_create_every_table_at_head(ledger: Ledger) -> None:
    assert set(inspect(ledger.engine).get_table_names()) >= TABLES
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head_revision()


def test_migrations_downgrade_and_upgrade_again(ledger: Ledger) -> None:
    ledger.record_requests(factory="f", site="s", submission_id="x", requests=[req("p1")], now=1.0)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
    with ledger.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not {"pilot_jobs", "site_controls", "site_overrides"} & set(inspect(ledger.engine).get_table_names())
    ledger.migrate()
    assert set(inspect(ledger.engine).get_table_names()) >= TABLES
    assert [p.pilot_id for p in ledger.pilots()] == ["p1"]


def test_times_keep_full_precision(ledger: Ledger) -> None:
    t = 1_767_225_600.123456
    ledger.record_requests(factory="f", site="s", submission_id="x", requests=[req("p1")], now=t)
    (rec,) = ledger.pilots()
    assert rec.created_at == t
    assert ledger.transitions("p1")[0].at == t


def test_two_processes_worth_of_writers(ledger_url: str) -> None:
    """Two Ledger objects (as the factory and the API would hold) write concurrently."""
    first, second = Ledger.open(ledger_url), Ledger.open(ledger_url)
    try:
        ids = [f"p{i}" for i in range(20)]
        first.record_requests(factory="f", site="s", submission_id="x", requests=[req(i) for i in ids], now=1.0)
        errors: list[BaseException] = []

        def worker(led: Ledger, chunk: list[str]) -> None:
            try:
                for n, pid in enumerate(chunk):
                    led.apply([Update(pid, E.SUBMITTED, job_id=pid)], 2.0 + n)
                    set_paused(led, "f", "s", n % 2 == 0, now=2.0 + n, by="test")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(led, ids[k::2])) for k, led in enumerate((first, second))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert first.counts("f") == {("s", PilotState.QUEUED): 20}
        assert set(site_controls(second, "f")) == {"s"}
    finally:
        first.close()
        second.close()


def test_drain_site_requests_survive_reopening(ledger_url: str) -> None:
    led = Ledger.open(ledger_url)
    led.record_requests(factory="f", site="s", submission_id="x", requests=[req("p1"), req("p2")], now=1.0)
    led.apply([Update("p2", E.SUBMIT_FAILED)], 2.0)
    drain_site(led, "f", "s", now=3.0, by="op", reason="maintenance")
    led.close()
    again = Ledger.open(ledger_url)
    try:
        assert [(r.kind, r.target, r.reason) for r in pending_requests(again, "f")] == [
            ("drain_pilot", "p1", "maintenance")
        ]
        ov = site_controls(again, "f")["s"]
        assert (ov.paused, ov.draining, ov.updated_by) == (True, True, "op")
    finally:
        again.close()


@pytest.mark.postgres
def test_postgres_server_is_real(postgres_server: PostgresServer, postgres_url: str) -> None:
    led = Ledger.open(postgres_url)
    try:
        assert led.engine.dialect.name == "postgresql"
        with led.engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            listen = conn.execute(text("SHOW listen_addresses")).scalar_one()
        assert int(str(version).split(".")[0]) >= 13
        assert listen == "127.0.0.1"
        assert postgres_url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/")
    finally:
        led.close()
