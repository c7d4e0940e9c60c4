"""PostgreSQL fixtures, shared by the test directories that need them (import the fixtures into
their conftest.py: ``from tests.fixtures_postgres import ledger_url, postgres_server, postgres_url``).

* ``postgres_server`` (session): one private PostgreSQL on 127.0.0.1 and a free port, started by
  tests/services/postgres-up.sh (Debian's postgresql, installed when missing). Started once per
  session even when several conftests import the fixture; stopped when the session ends. When it
  cannot start, its tests fail under CI=true and skip elsewhere.
* ``postgres_url``: a new, empty database on it for one test (dropped afterwards).
* ``ledger_url``: parametrized over ``sqlite`` (a file in tmp_path) and ``postgres`` (marked
  ``postgres``), so a ledger test written against it runs on both backends.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import SERVICES, free_port_range, run_service_script

__all__ = ["PostgresServer", "ledger_url", "postgres_server", "postgres_url"]


@dataclass(frozen=True)
class PostgresServer:
    base: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(sql)  # type: ignore[arg-type]  # test-only DDL on generated names

    def create_database(self, name: str) -> str:
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_SERVER = pytest.StashKey[PostgresServer]()


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> PostgresServer:
    """A private PostgreSQL for the whole session (see the module docstring)."""
    config = request.config
    if _SERVER in config.stash:
        return config.stash[_SERVER]
    parent = Path(tempfile.mkdtemp(prefix="cf-pg-", dir="/tmp"))
    parent.chmod(0o755)  # the postgres user must reach the cluster directory
    base = parent / "pg"
    port = free_port_range(1)
    env = {"BASE": str(base), "PORT": str(port)}

    def stop() -> None:
        subprocess.run(["bash", str(SERVICES / "postgres-down.sh")], env=env, capture_output=True, timeout=60)
        shutil.rmtree(parent, ignore_errors=True)

    try:
        run_service_script("postgres-up.sh", env, timeout=300)
    except BaseException:
        stop()
        raise
    config.add_cleanup(stop)
    server = PostgresServer(base, port)
    config.stash[_SERVER] = server
    return server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database for one test; its SQLAlchemy URL."""
    name = f"cf_test_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger URL on each backend: SQLite in tmp_path, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite"
    url: str = request.getfixturevalue("postgres_url")
    return url
