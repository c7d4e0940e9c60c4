"""The REST API over a hand-filled ledger: reads, token rules, actions, OpenAPI, headers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.api.conftest import AUTH, TOKEN
from tests.ledger.scenario import FACTORY, T0, UNTIL, H

from campus_factory.api.auth import load_token
from campus_factory.config import ApiOptions
from campus_factory.errors import ConfigError
from campus_factory.ledger import Ledger
from campus_factory.ledger.controls import pending_requests, site_controls
from campus_factory.ledger.overrides import get_overrides


def test_openapi_is_served_without_cdn_pages(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/api/v1/sites", "/api/v1/pilots", "/api/v1/plan", "/api/v1/accounting", "/metrics"):
        assert path in doc["paths"]
    assert "/api/v1/sites/{site}/pause" in doc["paths"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 404


def test_sites(client: TestClient) -> None:
    sites = {s["name"]: s for s in client.get("/api/v1/sites").json()}
    assert list(sites) == ["alpha", "beta"]
    alpha, beta = sites["alpha"], sites["beta"]
    assert alpha["pilots"]["joined"] == 1 and alpha["pilots"]["failed"] == 1 and alpha["pilots"]["ended"] == 1
    assert alpha["live"] == 1 and beta["live"] == 0
    assert alpha["status"] == "ok" and alpha["paused"] is False
    assert alpha["plan"] == {
        "submit": 2,
        "cancel": 0,
        "needed": 3,
        "supply": 1,
        "bound_by": "max_queued",
        "reasons": ["2 job group(s) want 3 pilots"],
        "health": "ok",
    }
    assert beta["health"]["state"] == "ok" and beta["health"]["black_hole"] is False
    assert client.get("/api/v1/sites/beta").json()["name"] == "beta"
    assert client.get("/api/v1/sites/nowhere").status_code == 404


def test_pilots(client: TestClient) -> None:
    assert [p["pilot_id"] for p in client.get("/api/v1/pilots").json()] == ["a2"]
    every = client.get("/api/v1/pilots", params={"all": "true"}).json()
    assert {p["pilot_id"] for p in every} == {"a1", "a2", "a3", "b1", "b2"}  # not the other factory's o1
    pages = [client.get("/api/v1/pilots", params={"all": "true", "limit": 2, "offset": o}).json() for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 1]  # paged, newest first, each pilot once
    assert [p["pilot_id"] for page in pages for p in page] == [p["pilot_id"] for p in every]
    assert client.get("/api/v1/pilots", params={"offset": -1}).status_code == 422
    failed = client.get("/api/v1/pilots", params=[("state", "failed"), ("site", "beta")]).json()
    assert [(p["pilot_id"], p["exit_code"]) for p in failed] == [("b2", 1)]
    a1 = client.get("/api/v1/pilots/a1").json()
    assert [t["to"] for t in a1["transitions"]] == ["requested", "queued", "running", "joined", "ended"]
    assert [(j["owner"], j["cpus"]) for j in a1["jobs"]] == [("alice", 4), ("bob", 4)]
    assert client.get("/api/v1/pilots/o1").status_code == 404
    assert client.get("/api/v1/pilots", params={"state": "bogus"}).status_code == 422


def test_demand_plan_history_requests(client: TestClient) -> None:
    demand = client.get("/api/v1/demand").json()
    assert demand["as_of"] == UNTIL - 60 and demand["idle_jobs"] == 14
    assert [(g["group_id"], g["site"]) for g in demand["groups"]] == [("g-alice", "alpha"), ("g-dave", None)]
    plan = client.get("/api/v1/plan").json()
    assert plan["submitted"] == 2 and plan["plan"]["sites"][0]["site"] == "alpha"
    assert "alpha: submit 2, cancel 0 (bound by max_queued)" in plan["explanation"]
    assert "g-dave -> nowhere: no site has 256000 MB of memory" in plan["explanation"]
    hist = client.get("/api/v1/history", params={"window": 6 * H, "points": 7}).json()
    assert hist["times"][0] == T0 and hist["states"]["joined"] == [0, 0, 1, 1, 1, 1, 1]
    assert client.get("/api/v1/requests").json() == []


def test_accounting(client: TestClient) -> None:
    acc = client.get("/api/v1/accounting", params={"since": T0, "until": UNTIL}).json()
    assert acc["total"]["delivered_core_hours"] == pytest.approx(33)
    assert acc["total"]["wasted_core_hours"] == pytest.approx(11)
    assert acc["total"]["spend"] == pytest.approx(1.9)
    by_owner = client.get("/api/v1/accounting", params={"since": T0, "until": UNTIL, "by": "owner"}).json()
    assert [r["group"] for r in by_owner["rows"]] == ["(no jobs)", "alice", "bob"]
    assert client.get("/api/v1/accounting", params={"since": UNTIL, "until": T0}).status_code == 422
    assert client.get("/api/v1/accounting", params={"by": "planet"}).status_code == 422


def test_dashboard_document(client: TestClient) -> None:
    d = client.get("/api/v1/dashboard").json()
    assert d["factory"] == FACTORY and d["last_cycle_at"] == UNTIL - 60
    assert d["totals"] == {"live": 1, "running": 1, "queued": 0, "idle_jobs": 14}
    assert d["accounting"]["total"]["waste_pct"] == pytest.approx(100 / 3)
    assert {"kind": "site", "subject": "beta", "text": "no job group matches this site"} in d["decisions"]
    assert [c["duration_s"] for c in d["cycles"]] == [1.7, 0.8]
    assert d["supply"][0] == {"site": "alpha", "needed": 3, "supply": 1, "running": 1}


def test_actions_need_the_token(client: TestClient, api_ledger: Ledger) -> None:
    assert client.post("/api/v1/sites/alpha/pause").status_code == 401
    bad = client.post("/api/v1/sites/alpha/pause", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/v1/pilots/a2/drain").status_code == 401
    assert site_controls(api_ledger, FACTORY) == {} and pending_requests(api_ledger, FACTORY) == []


def test_pause_resume_and_drain(client: TestClient, api_ledger: Ledger) -> None:
    r = client.post("/api/v1/sites/alpha/pause", headers=AUTH, json={"reason": "kernel upgrade"})
    assert r.status_code == 200 and r.json() == {"site": "alpha", "paused": True, "draining": False}
    alpha = client.get("/api/v1/sites/alpha").json()
    assert alpha["status"] == "paused" and alpha["control"]["reason"] == "kernel upgrade"
    assert alpha["control"]["updated_by"].startswith("token@")
    assert client.post("/api/v1/sites/alpha/resume", headers=AUTH).json()["paused"] is False

    drained = client.post("/api/v1/sites/alpha/drain", headers=AUTH)
    assert drained.status_code == 202
    body = drained.json()
    assert (body["paused"], body["draining"]) == (True, True)
    assert [(q["kind"], q["target"], q["pending"]) for q in body["requests"]] == [("drain_pilot", "a2", True)]
    assert client.get("/api/v1/sites/alpha").json()["status"] == "draining"

    again = client.post("/api/v1/pilots/a2/drain", headers=AUTH)
    assert again.status_code == 202 and again.json()["id"] == body["requests"][0]["id"]  # still pending: same one
    ended = client.post("/api/v1/pilots/a1/drain", headers=AUTH)
    assert ended.status_code == 409 and "already ended" in ended.json()["detail"]
    assert client.post("/api/v1/pilots/zz/drain", headers=AUTH).status_code == 404
    assert client.post("/api/v1/sites/zz/pause", headers=AUTH).status_code == 404
    assert [r["target"] for r in client.get("/api/v1/requests").json()] == ["a2"]
    assert client.post("/api/v1/sites/alpha/resume", headers=AUTH).json()["draining"] is False


def test_scale_sets_and_clears_the_override(client: TestClient, api_ledger: Ledger) -> None:
    assert client.post("/api/v1/sites/alpha/scale", json={"ceiling": 3}).status_code == 401
    r = client.post("/api/v1/sites/alpha/scale", headers=AUTH, json={"floor": 1, "ceiling": 3, "note": "exam week"})
    assert r.status_code == 200 and r.json() == {"site": "alpha", "floor": 1, "ceiling": 3, "note": "exam week"}
    stored = get_overrides(api_ledger, FACTORY)["alpha"]
    assert (stored.floor, stored.ceiling, stored.note) == (1, 3, "exam week")
    assert client.get("/api/v1/sites/alpha").json()["scale"]["ceiling"] == 3
    too_many = client.post("/api/v1/sites/alpha/scale", headers=AUTH, json={"floor": 50})
    assert too_many.status_code == 422 and "does not fit" in too_many.json()["detail"]
    assert client.post("/api/v1/sites/alpha/scale", headers=AUTH, json={}).status_code == 422
    assert client.post("/api/v1/sites/alpha/scale", headers=AUTH, json={"floor": -1}).status_code == 422
    assert client.delete("/api/v1/sites/alpha/scale", headers=AUTH).json() == {"site": "alpha", "cleared": True}
    assert client.get("/api/v1/sites/alpha").json()["scale"] is None


def test_not_supported_yet_is_501(client: TestClient) -> None:
    r = client.post("/api/v1/pilots/a2/cancel", headers=AUTH)
    assert r.status_code == 501 and "not supported yet" in r.json()["detail"]


def test_without_a_token_actions_are_refused(app_factory: Callable[..., FastAPI]) -> None:
    with TestClient(app_factory(token=None)) as c:
        r = c.post("/api/v1/sites/alpha/pause", headers=AUTH)
        assert r.status_code == 403 and "no API token is configured" in r.json()["detail"]
        assert c.get("/api/v1/sites").status_code == 200


def test_closed_reads(app_factory: Callable[..., FastAPI]) -> None:
    with TestClient(app_factory(read_only_open=False)) as c:
        assert c.get("/api/v1/sites").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/api/v1/sites", headers=AUTH).status_code == 200
        assert c.get("/").status_code == 200  # the page itself asks for the token
        assert c.get("/healthz").status_code == 200
    with pytest.raises(ConfigError, match="needs a token"):
        app_factory(token=None, read_only_open=False)


def test_load_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "token"
    f.write_text(f"  {TOKEN}\n")
    assert load_token(ApiOptions(token_file=str(f))) == TOKEN
    monkeypatch.setenv("CF_TEST_TOKEN", "from-env")
    assert load_token(ApiOptions(token_env="CF_TEST_TOKEN")) == "from-env"
    assert load_token(ApiOptions()) is None
    f.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_token(ApiOptions(token_file=str(f)))
    with pytest.raises(ConfigError, match="cannot read"):
        load_token(ApiOptions(token_file=str(tmp_path / "missing")))
    monkeypatch.delenv("CF_TEST_TOKEN")
    with pytest.raises(ConfigError, match="unset or empty"):
        load_token(ApiOptions(token_env="CF_TEST_TOKEN"))


def test_dashboard_files_and_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for ref in ("/static/dashboard.js", "/static/dashboard.css"):
        assert ref in page.text
        assert client.get(ref).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert "https://" not in client.get("/static/dashboard.js").text
