"""Spend and spend ceilings: pure functions over pilot records (no I/O).

Money is in the unit of ``cost_per_core_hour``. A pilot costs ``cpus x cost_per_core_hour`` per
hour from ``started_at`` (when the site reported it running) until ``ended_at`` (or now). Two
ceilings apply per site and overall, each optional:

* **per hour**: the *rate*: what all live pilots (queued ones too: they are about to start)
  cost per hour, the new ones included, may not exceed ``max_per_hour``;
* **per day**: the spend of the last 24 hours, plus one more hour of all live pilots (the new
  ones included), may not exceed ``max_per_day``.

:func:`allowed_pilots` answers "how many of N more pilots may this site start now?", with a
reason when the answer is less than N. The ledger's :class:`PilotRecord` fits :class:`PilotUsage`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "DAY",
    "HOUR",
    "BudgetDecision",
    "Ceiling",
    "PilotUsage",
    "Spending",
    "UsageRecord",
    "allowed_given",
    "allowed_pilots",
    "burn_rate",
    "core_hours",
    "spend_by_site",
]

HOUR = 3600.0
DAY = 24 * HOUR
_LIVE = frozenset({"requested", "queued", "running", "joined", "retiring"})


class PilotUsage(Protocol):
    """What spend needs of a pilot (the ledger's PilotRecord has it)."""

    @property
    def site(self) -> str: ...
    @property
    def cpus(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def ended_at(self) -> float | None: ...


@dataclass(frozen=True)
class UsageRecord:
    """A pilot as plain data."""

    site: str
    cpus: int
    state: str
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class Ceiling:
    """Spend ceilings; None means no ceiling."""

    per_hour: float | None = None
    per_day: float | None = None


@dataclass(frozen=True)
class BudgetDecision:
    allowed: int
    reason: str = ""  # why fewer than asked (empty when all are allowed)


def core_hours(pilot: PilotUsage, since: float, until: float) -> float:
    """Core-hours the pilot used within [since, until]."""
    if pilot.started_at is None:
        return 0.0
    end = pilot.ended_at if pilot.ended_at is not None else until
    seconds = max(0.0, min(end, until) - max(pilot.started_at, since))
    return pilot.cpus * seconds / HOUR


def spend_by_site(
    pilots: Iterable[PilotUsage], cost_per_core_hour: Mapping[str, float], since: float, until: float
) -> dict[str, float]:
    """Spend per site within [since, until]; sites without a cost are free."""
    out: dict[str, float] = {}
    for p in pilots:
        cost = cost_per_core_hour.get(p.site, 0.0)
        if cost:
            out[p.site] = out.get(p.site, 0.0) + core_hours(p, since, until) * cost
    return out


def burn_rate(pilots: Iterable[PilotUsage], cost_per_core_hour: Mapping[str, float]) -> dict[str, float]:
    """What live pilots cost per hour, per site."""
    out: dict[str, float] = {}
    for p in pilots:
        cost = cost_per_core_hour.get(p.site, 0.0)
        if cost and str(p.state) in _LIVE:
            out[p.site] = out.get(p.site, 0.0) + p.cpus * cost
    return out


def _fit(ceiling: Ceiling, rate: float, spent_day: float, unit: float, want: int, who: str) -> BudgetDecision:
    """How many pilots of hourly cost ``unit`` fit under one ceiling."""
    allowed, reason = want, ""
    if ceiling.per_hour is not None:
        room = int((ceiling.per_hour - rate + 1e-9) // unit) if unit else want
        if room < allowed:
            allowed = max(0, room)
            reason = f"{who} spend ceiling of {ceiling.per_hour:g}/hour (now {rate:.4g}/hour)"
    if ceiling.per_day is not None:
        room = int((ceiling.per_day - spent_day - rate + 1e-9) // unit) if unit else want
        if room < allowed:
            allowed = max(0, room)
            reason = f"{who} spend ceiling of {ceiling.per_day:g}/day (spent {spent_day:.4g} in 24 h)"
    return BudgetDecision(allowed, reason)


@dataclass
class Spending:
    """Live pilots' cost per hour and the last day's spend, per site: computed once a plan."""

    rates: dict[str, float]
    spent: dict[str, float]

    @classmethod
    def of(cls, pilots: Iterable[PilotUsage], cost_per_core_hour: Mapping[str, float], now: float) -> Spending:
        records = list(pilots)
        return cls(burn_rate(records, cost_per_core_hour), spend_by_site(records, cost_per_core_hour, now - DAY, now))

    def add(self, site: str, n: int, cpus: int, cost_per_core_hour: Mapping[str, float]) -> None:
        """``n`` more live pilots of ``cpus`` cores at ``site`` (just requested: no spend yet)."""
        cost = cost_per_core_hour.get(site, 0.0)
        if cost and n > 0:
            self.rates[site] = self.rates.get(site, 0.0) + n * cpus * cost


def allowed_given(
    site: str,
    want: int,
    cpus: int,
    spending: Spending,
    cost_per_core_hour: Mapping[str, float],
    *,
    site_ceiling: Ceiling = Ceiling(),
    overall: Ceiling = Ceiling(),
) -> BudgetDecision:
    """:func:`allowed_pilots` from spending already summed up."""
    unit = cpus * cost_per_core_hour.get(site, 0.0)
    if want <= 0 or unit <= 0:
        return BudgetDecision(max(0, want))
    rates, spent = spending.rates, spending.spent
    mine = _fit(site_ceiling, rates.get(site, 0.0), spent.get(site, 0.0), unit, want, f"site {site}:")
    total = _fit(overall, sum(rates.values()), sum(spent.values()), unit, mine.allowed, "overall")
    return total if total.allowed < mine.allowed else mine


def allowed_pilots(
    site: str,
    want: int,
    cpus: int,
    pilots: Iterable[PilotUsage],
    cost_per_core_hour: Mapping[str, float],
    now: float,
    *,
    site_ceiling: Ceiling = Ceiling(),
    overall: Ceiling = Ceiling(),
) -> BudgetDecision:
    """How many of ``want`` more pilots of ``cpus`` cores ``site`` may start now under its own
    ceilings and the overall ones. A free site (no cost) is never limited."""
    unit = cpus * cost_per_core_hour.get(site, 0.0)
    if want <= 0 or unit <= 0:
        return BudgetDecision(max(0, want))
    spending = Spending.of(pilots, cost_per_core_hour, now)
    return allowed_given(site, want, cpus, spending, cost_per_core_hour, site_ceiling=site_ceiling, overall=overall)
