"""Secrets are never logged nor returned by the API.

A cycle runs the glidein payload against a Slurm site whose commands are played by a recording
executor; its ``condor_token_create`` prints a known token. The token must reach the pilot's
script (it is used) and nothing else: no log record (captured raw at DEBUG, before any
redaction), no cycle error, no ledger row, no API answer. The same holds when things fail: the
minting command fails printing the token anyway, or sbatch fails echoing the whole script on
stderr (a chatty wrapper): then the token may reach an error text, and the production log
handler and the API must mask it. The API's own bearer token is never returned either.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from tests.reliability.fakes import RecordingSlurm

from campus_factory.api import create_app
from campus_factory.config import Config, parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.logs import JsonFormatter, RedactingFormatter, Redactor
from campus_factory.loop.factory import CycleReport, Factory
from campus_factory.pilot.payload import GlideinBuilder
from campus_factory.providers.slurm import SlurmProvider

API_TOKEN = "api-bearer-5ecret-f0r-tests"
PASSWORD = "pg-pa55word-x"


def make_config(tmp: Path) -> Config:
    return parse_config(
        {
            "factory": {"name": "sec", "ledger_url": f"sqlite:///{tmp}/ledger.sqlite"},
            "pilot": {"payload": "glidein", "condor_locations": [str(tmp / "none")]},
            "pool": {"collector": "127.0.0.1:9618"},
            "sites": [
                {
                    "name": "hpc",
                    "provider": "slurm",
                    "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0},
                    "limits": {"max_pilots": 4, "max_queued": 4, "max_submit_per_cycle": 2},
                }
            ],
        }
    )


@contextmanager
def captured_logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Every record of every logger at DEBUG: raw, and through the production redacting handler."""
    raw, redacted = io.StringIO(), io.StringIO()
    plain = logging.StreamHandler(raw)
    plain.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    masked = logging.StreamHandler(redacted)
    masked.setFormatter(RedactingFormatter(JsonFormatter(), Redactor([API_TOKEN])))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(plain)
    root.addHandler(masked)
    try:
        yield raw, redacted
    finally:
        root.removeHandler(plain)
        root.removeHandler(masked)
        root.setLevel(level)


def run_cycles(tmp: Path, ex: RecordingSlurm, n: int = 2) -> tuple[Factory, list[CycleReport], str, str]:
    cfg = make_config(tmp)
    glidein = GlideinBuilder(cfg.pool, cfg.pilot, ex, cfg.factory.name)
    provider = SlurmProvider(cfg.sites[0], cfg.pilot, ex, cfg.factory.name, glidein)
    demand = StaticDemand([JobGroup("g", 3, cpus=1, memory_mb=100, disk_mb=0, owner="alice")])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"hpc": provider})
    with captured_logs() as (raw, redacted):
        logging.getLogger("campus_factory.test").info("connecting with password=%s", PASSWORD)
        reports = [asyncio.run(f.run_once()) for _ in range(n)]
    return f, reports, raw.getvalue(), redacted.getvalue()


def api_answers(f: Factory) -> dict[str, str]:
    """The text of every GET route of the API (path parameters filled with real values)."""
    app = create_app(f.config, f.ledger, token=API_TOKEN)
    pilots = [p.pilot_id for p in f.ledger.pilots(factory=f.name)]
    out: dict[str, str] = {}
    with TestClient(app) as c:
        for route in app.routes:
            if not isinstance(route, APIRoute) or "GET" not in route.methods:
                continue
            for pid in pilots if "{pilot_id}" in route.path else [""]:
                path = route.path.replace("{site}", "hpc").replace("{pilot_id}", pid)
                r = c.get(path, headers={"Authorization": f"Bearer {API_TOKEN}"})
                assert r.status_code == 200, (path, r.status_code)
                out[path] = r.text
    assert "/api/v1/dashboard" in out and "/metrics" in out and any("/api/v1/pilots/" in p for p in out)
    return out


def ledger_text(f: Factory) -> str:
    rows = [repr(p) for p in f.ledger.pilots(factory=f.name)]
    rows += [repr(t) for p in f.ledger.pilots(factory=f.name) for t in f.ledger.transitions(p.pilot_id)]
    rows.append(repr(f.ledger.last_cycle(f.name)))
    return "\n".join(rows)


def test_the_pilot_token_reaches_the_script_and_nothing_else(tmp_path: Path) -> None:
    ex = RecordingSlurm()
    f, reports, raw, redacted = run_cycles(tmp_path, ex)
    assert all(r.errors == [] for r in reports) and sum(r.submitted for r in reports) >= 2
    assert ex.scripts and all(ex.token in s for s in ex.scripts)  # the secret was used
    # it went to sbatch on stdin only: never in a command line nor an environment
    assert not [c.argv for c in ex.calls if any(ex.token in a for a in c.argv)]
    assert not [c.env for c in ex.calls if c.env and any(ex.token in v for v in c.env.values())]
    assert "submitted 2 pilot(s)" in raw  # logs were captured
    assert ex.token not in raw and ex.token not in redacted
    assert PASSWORD in raw and PASSWORD not in redacted  # the production handler masks secrets
    assert ex.token not in ledger_text(f)
    for path, text in api_answers(f).items():
        assert ex.token not in text and API_TOKEN not in text, path


@pytest.mark.parametrize("failure", ["token-command-fails", "sbatch-echoes-the-script"])
def test_failures_do_not_leak_the_token(tmp_path: Path, failure: str) -> None:
    ex = RecordingSlurm(
        token_fails=failure == "token-command-fails", sbatch_fails_echoing=failure != "token-command-fails"
    )
    f, reports, raw, redacted = run_cycles(tmp_path, ex, n=1)
    (report,) = reports
    assert report.submitted == 0 and [e for e in report.errors if e.startswith("hpc: act failed")], report.errors
    if failure == "token-command-fails":
        # the minting command's stdout is never kept: not even in the error
        assert "signing key missing" in report.errors[0]
        assert ex.token not in "\n".join(report.errors) and ex.token not in raw
    else:
        assert ex.scripts and ex.token in ex.scripts[0]  # sbatch saw the script, and failed
        assert "at line: ***" in report.errors[0] and ex.token not in "\n".join(report.errors)
    assert "act failed" in redacted and ex.token not in redacted
    failed = f.ledger.pilots(factory=f.name)
    assert failed and {p.state.value for p in failed} == {"failed"}
    assert ex.token not in ledger_text(f)
    for path, text in api_answers(f).items():
        assert ex.token not in text and API_TOKEN not in text, path
    assert re.search(r"hpc: act failed", redacted)
