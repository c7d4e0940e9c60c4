"""The dashboard in a real browser (Debian's Chromium via Playwright) against uvicorn on
127.0.0.1, over the hand-filled ledger: what a person would see."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.api.conftest import AUTH, TOKEN, live_server

pytestmark = pytest.mark.browser


def cells(page: Any, site: str) -> dict[str, str]:
    row = page.locator(f'#sites tbody tr[data-site="{site}"]')
    counts = {
        st: row.locator(f'td.pilot-count[data-state="{st}"]').inner_text()
        for st in ("requested", "queued", "running", "joined", "retiring", "failed")
    }
    return {"status": row.locator("td.status").inner_text(), **counts}


def test_dashboard_shows_sites_pilots_waste_and_decisions(
    app_factory: Callable[..., FastAPI], page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    with live_server(app_factory()) as url:
        page.goto(url + "/")
        expect(page.locator("#factory-name")).to_have_text("campus")
        expect(page.locator("#sites tbody tr")).to_have_count(2)
        assert page.locator("#sites tbody tr strong").all_inner_texts() == ["alpha", "beta"]
        assert cells(page, "alpha") == {
            "status": "ok",
            "requested": "0",
            "queued": "0",
            "running": "0",
            "joined": "1",
            "retiring": "0",
            "failed": "1",
        }
        assert cells(page, "beta")["failed"] == "1"
        expect(page.locator("#total-live")).to_have_text("1")
        expect(page.locator("#total-idle")).to_have_text("14")
        expect(page.locator("#waste-pct")).to_have_text("33.3 %")
        expect(page.locator("#waste-detail")).to_have_text("11.0 of 33.0 core-hours idle")
        expect(page.locator("#spend")).to_have_text("1.90")
        decisions = page.locator("#decisions li").all_inner_texts()
        assert any("g-dave" in d and "no site has 256000 MB of memory" in d for d in decisions)
        assert any("alpha" in d and "2 job group(s) want 3 pilots" in d for d in decisions)
        assert page.locator("#history-chart polygon").count() == 5
        assert page.locator('#supply-chart rect[data-site="alpha"][data-series="needed"]').count() == 1
        expect(page.locator("#cycles tbody tr")).to_have_count(2)
        shot = Path(os.environ.get("CF_DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        # an operator pauses beta: the page shows it after a reload, with the reason
        r = httpx.post(f"{url}/api/v1/sites/beta/pause", headers=AUTH, json={"reason": "maintenance"})
        assert r.status_code == 200
        page.reload()
        expect(page.locator('#sites tbody tr[data-site="beta"] td.status')).to_have_text("paused")
        expect(page.locator('#sites tbody tr[data-site="beta"]')).to_contain_text("operator: maintenance")
    assert errors == []


def test_dashboard_asks_for_the_token_when_reads_are_closed(app_factory: Callable[..., FastAPI], page: Any) -> None:
    from playwright.sync_api import expect

    with live_server(app_factory(read_only_open=False)) as url:
        page.goto(url + "/")
        expect(page.locator("#token-form")).to_be_visible()
        expect(page.locator("#status")).to_have_text("this dashboard needs the API token")
        page.fill("#token-input", TOKEN)
        page.click("#token-form button")
        expect(page.locator("#sites tbody tr")).to_have_count(2)
        expect(page.locator("#token-form")).to_be_hidden()
        expect(page.locator("#waste-pct")).to_have_text("33.3 %")
