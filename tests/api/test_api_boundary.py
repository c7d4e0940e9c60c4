"""The REST boundary (issue 15, item 10): the requests the review saw answered 500, or wrongly
accepted, get a 4xx with the reason; a valid request still works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import TOKEN, fill, make_config
from tests.ledger.scenario import UNTIL

from campus_factory.api import create_app
from campus_factory.api.inputs import clean_text
from campus_factory.ledger import Ledger

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    ledger = Ledger.open(f"sqlite:///{tmp_path}/api.sqlite")
    fill(ledger)
    try:
        app = create_app(make_config(), ledger, token=TOKEN, clock=lambda: UNTIL)
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/sites/alpha/scale", '{"ceiling": 9223372036854775808}'),
        ("POST", "/api/v1/sites/alpha/scale", '{"ceiling": 1e30}'),
        ("POST", "/api/v1/sites/alpha/scale", '{"floor": 1000001}'),
        ("POST", "/api/v1/sites/alpha/scale", '{"floor": 1, "note": "\\ud800"}'),
        ("POST", "/api/v1/sites/alpha/pause", '{"reason": "\\ud800"}'),
        ("POST", "/api/v1/sites/alpha/drain", '{"reason": "\\udfff x"}'),
        ("POST", "/api/v1/pilots/a2/drain", '{"reason": "\\ud800"}'),
        ("POST", "/api/v1/sites/alpha/pause", '{"reason": "ok\\n2026-01-01 INFO forged line"}'),
        ("POST", "/api/v1/sites/alpha/pause", '{"reason": "\\u001b[31mred"}'),
        ("GET", "/api/v1/history?window=1e-300", None),
        ("GET", "/api/v1/history?window=nan", None),
        ("GET", "/api/v1/history?window=inf", None),
        ("GET", "/api/v1/accounting?since=nan", None),
        ("GET", "/api/v1/accounting?since=-inf", None),
        ("GET", "/api/v1/accounting?until=inf", None),
        ("GET", "/api/v1/accounting?since=1e300", None),
        ("GET", "/api/v1/accounting?since=-5", None),
    ],
)
def test_hostile_requests_get_a_4xx(client: TestClient, method: str, path: str, body: str | None) -> None:
    r = client.request(method, path, content=body, headers=AUTH)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.json()["detail"]


def test_valid_requests_still_work(client: TestClient) -> None:
    assert (
        client.post("/api/v1/sites/alpha/scale", content='{"ceiling": 3, "note": "é ok"}', headers=AUTH).json()[
            "ceiling"
        ]
        == 3
    )
    assert client.post("/api/v1/sites/alpha/pause", content='{"reason": "maintenance\\tnow"}', headers=AUTH).is_success
    assert client.get(f"/api/v1/accounting?since={UNTIL - 3600}&until={UNTIL}").is_success
    assert client.get("/api/v1/history?window=3600").is_success


def test_clean_text_refuses_what_cannot_be_stored_or_printed() -> None:
    assert clean_text("naïve\tok") == "naïve\tok"
    for bad in ("\ud800", "a\nb", "\x1b[2J", "\x85", "\x00"):
        with pytest.raises(ValueError):
            clean_text(bad)
