"""Prometheus metrics, computed from the ledger at each scrape (no state of their own).

Every series comes from the ledger, so the numbers are the same whichever process serves them
and survive restarts; counters are counts of ledger rows (monotonic while rows are kept).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from ..config import Config
from ..ledger import LIVE, Ledger, PilotState
from ..ledger.accounting import account
from ..ledger.controls import site_controls
from ..ledger.models import CycleRow
from .views import costs_of

__all__ = ["CYCLE_BUCKETS", "LedgerCollector", "build_registry"]

log = logging.getLogger(__name__)

CYCLE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_FAILED = (PilotState.FAILED, PilotState.LOST)


class LedgerCollector(Collector):
    """Collects the factory's metrics from the ledger; accounting totals are cached ``spend_ttl`` s."""

    def __init__(
        self, config: Config, ledger: Ledger, *, clock: Callable[[], float] = time.time, spend_ttl: float = 60.0
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.clock = clock
        self.spend_ttl = spend_ttl
        self._spend: tuple[float, dict[str, tuple[float, float]]] | None = None

    def describe(self) -> list[Metric]:
        return []  # collected on demand; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape must not raise: report it as a metric instead
            log.warning("metrics: cannot read the ledger: %s", exc)
            up = GaugeMetricFamily("campus_factory_ledger_up", "1 when the ledger could be read at this scrape.")
            up.add_metric([], 0)
            yield up

    def _collect(self) -> Iterator[Metric]:
        name = self.config.factory.name
        counts = self.ledger.counts(name)
        sites = [s.name for s in self.config.sites] + sorted(
            {s for s, _ in counts} - {s.name for s in self.config.sites}
        )
        pilots = GaugeMetricFamily("campus_factory_pilots", "Live pilots by site and state.", labels=["site", "state"])
        submitted = CounterMetricFamily(
            "campus_factory_pilot_submissions", "Pilots requested at a site, ever.", labels=["site"]
        )
        failures = CounterMetricFamily(
            "campus_factory_pilot_failures", "Pilots that ended failed or lost, ever.", labels=["site"]
        )
        for site in sites:
            for st in PilotState:
                if st in LIVE:
                    pilots.add_metric([site, st.value], counts.get((site, st), 0))
            submitted.add_metric([site], sum(n for (s, _), n in counts.items() if s == site))
            failures.add_metric([site], sum(counts.get((site, st), 0) for st in _FAILED))
        yield pilots
        yield submitted
        yield failures

        controls = site_controls(self.ledger, name)
        paused = GaugeMetricFamily("campus_factory_site_paused", "1 when an operator paused the site.", labels=["site"])
        for site in sites:
            paused.add_metric([site], 1 if site in controls and controls[site].paused else 0)
        yield paused

        last = self.ledger.last_cycle(name)
        plan: dict[str, Any] = last.plan if last is not None else {}
        demand = GaugeMetricFamily(
            "campus_factory_demand_idle_jobs", "Idle jobs by job group at the last cycle.", labels=["group"]
        )
        for g in plan.get("groups", ()):
            demand.add_metric([str(g.get("group_id"))], g.get("idle_jobs", 0))
        yield demand
        needed = GaugeMetricFamily(
            "campus_factory_site_needed_pilots", "Pilots the last plan wanted at the site.", labels=["site"]
        )
        for sp in plan.get("sites", ()):
            needed.add_metric([str(sp.get("site"))], sp.get("needed", 0))
        yield needed

        yield from self._cycles(name, last.started_at if last is not None else None)
        yield from self._spend_metrics(name)
        up = GaugeMetricFamily("campus_factory_ledger_up", "1 when the ledger could be read at this scrape.")
        up.add_metric([], 1)
        yield up

    def _cycles(self, name: str, last_at: float | None) -> Iterator[Metric]:
        cols: list[ColumnElement[Any]] = [func.count(), func.coalesce(func.sum(CycleRow.duration_s), 0.0)]
        cols += [func.coalesce(func.sum(case((CycleRow.duration_s <= b, 1), else_=0)), 0) for b in CYCLE_BUCKETS]
        with Session(self.ledger.engine) as s:
            row = s.execute(select(*cols).where(CycleRow.factory == name)).one()
        count, total, per_bucket = int(row[0]), float(row[1]), [int(x) for x in row[2:]]
        hist = HistogramMetricFamily("campus_factory_cycle_duration_seconds", "Duration of the factory's cycles.")
        buckets = [(str(b), n) for b, n in zip(CYCLE_BUCKETS, per_bucket, strict=True)] + [("+Inf", count)]
        hist.add_metric([], buckets, sum_value=total)
        yield hist
        when = GaugeMetricFamily("campus_factory_last_cycle_timestamp_seconds", "When the last cycle began.")
        if last_at is not None:
            when.add_metric([], last_at)
        yield when

    def _spend_metrics(self, name: str) -> Iterator[Metric]:
        now = self.clock()
        if self._spend is None or now - self._spend[0] >= self.spend_ttl:
            acc = account(self.ledger, since=0.0, until=now + 1.0, costs=costs_of(self.config), factory=name, now=now)
            self._spend = (now, {r.group: (r.delivered_core_hours, r.spend) for r in acc.rows})
        delivered = CounterMetricFamily(
            "campus_factory_core_hours_delivered", "Core-hours pilots ran at the site, ever.", labels=["site"]
        )
        spend = CounterMetricFamily(
            "campus_factory_spend", "Delivered core-hours times the site's cost per core-hour, ever.", labels=["site"]
        )
        for site, (hours, cost) in sorted(self._spend[1].items()):
            delivered.add_metric([site], hours)
            spend.add_metric([site], cost)
        yield delivered
        yield spend


def build_registry(config: Config, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> CollectorRegistry:
    """A registry holding only the factory's collector (no process metrics of the test runner)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(config, ledger, clock=clock))
    return registry
