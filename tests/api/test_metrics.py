"""Prometheus /metrics over the hand-filled ledger: every series a scraper relies on."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tests.api.conftest import AUTH, make_config

from campus_factory.api.metrics import LedgerCollector
from campus_factory.ledger import Ledger


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }


def test_metrics(client: TestClient) -> None:
    m = scrape(client)
    assert m[("campus_factory_pilots", (("site", "alpha"), ("state", "joined")))] == 1
    assert m[("campus_factory_pilots", (("site", "beta"), ("state", "running")))] == 0
    assert ("campus_factory_pilots", (("site", "alpha"), ("state", "failed"))) not in m  # live states only
    assert m[("campus_factory_pilot_submissions_total", (("site", "alpha"),))] == 3
    assert m[("campus_factory_pilot_submissions_total", (("site", "beta"),))] == 2
    assert m[("campus_factory_pilot_failures_total", (("site", "alpha"),))] == 1
    assert m[("campus_factory_pilot_failures_total", (("site", "beta"),))] == 1
    assert m[("campus_factory_demand_idle_jobs", (("group", "g-alice"),))] == 12
    assert m[("campus_factory_demand_idle_jobs", (("group", "g-dave"),))] == 2
    assert m[("campus_factory_site_needed_pilots", (("site", "alpha"),))] == 3
    assert m[("campus_factory_cycle_duration_seconds_count", ())] == 2
    assert m[("campus_factory_cycle_duration_seconds_sum", ())] == pytest.approx(2.5)
    assert m[("campus_factory_cycle_duration_seconds_bucket", (("le", "1.0"),))] == 1
    assert m[("campus_factory_cycle_duration_seconds_bucket", (("le", "2.5"),))] == 2
    assert m[("campus_factory_cycle_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    # all time: alpha 16 + 12 core-hours; beta b1 runs 3 h (before the window too) x 2 + b2 1
    assert m[("campus_factory_core_hours_delivered_total", (("site", "alpha"),))] == pytest.approx(28)
    assert m[("campus_factory_core_hours_delivered_total", (("site", "beta"),))] == pytest.approx(7)
    assert m[("campus_factory_spend_total", (("site", "alpha"),))] == pytest.approx(1.4)
    assert m[("campus_factory_spend_total", (("site", "beta"),))] == pytest.approx(0.7)
    assert m[("campus_factory_site_paused", (("site", "alpha"),))] == 0
    assert m[("campus_factory_ledger_up", ())] == 1


def test_metrics_follow_the_ledger(client: TestClient) -> None:
    client.post("/api/v1/sites/beta/pause", headers=AUTH)
    assert scrape(client)[("campus_factory_site_paused", (("site", "beta"),))] == 1


def test_a_broken_ledger_is_a_metric_not_an_error(api_ledger: Ledger) -> None:
    collector = LedgerCollector(make_config(), api_ledger)
    api_ledger.engine.dispose()
    with api_ledger.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE cycles")
    families = list(collector.collect())
    assert [f.name for f in families][-1] == "campus_factory_ledger_up"
    assert families[-1].samples[0].value == 0
