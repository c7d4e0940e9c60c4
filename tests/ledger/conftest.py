"""Ledger fixtures: ``ledger_url`` and ``ledger`` run each test on SQLite and on PostgreSQL.

A test that takes ``ledger`` (or ``ledger_url``) runs twice: ``[sqlite]`` and ``[postgres]``
(marker ``postgres``; the server starts once per session, each test gets a new database).
A module that defines its own ``ledger`` fixture keeps it (module fixtures win over these).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.fixtures_postgres import ledger_url, postgres_server, postgres_url

from campus_factory.ledger import Ledger

__all__ = ["ledger", "ledger_url", "postgres_server", "postgres_url"]


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """An empty, migrated ledger on the backend of ``ledger_url``."""
    led = Ledger.open(ledger_url)
    try:
        yield led
    finally:
        led.close()
