"""Provisioning policies the simulator compares, all returning a planner :class:`Plan`.

* :class:`PlannerPolicy` ("ours"): the real matchmaking-aware planner, with a match cache kept
  between cycles as the loop keeps it.
* :class:`OriginalRule` ("original"): the original Campus Factory rule — glideins for idle
  jobs, no matching: one pilot per idle job not yet covered by a queued pilot, at the sites in
  config order, up to each site's limits. It never cancels: idle glideins leave by themselves.
* :class:`CobaldController` ("cobald"): a utilisation-feedback controller in the style of
  COBalD's ``LinearController``, one per site: the site's demand (in pilots) rises by ``rate``
  per cycle while the utilisation of its joined pilots is above ``high`` and falls by ``rate``
  while it is below ``low``; supply follows demand (submit up to it within the site's limits;
  above it, cancel queued pilots, then idle ones). A site with no joined pilot counts as fully
  used when any job is idle and as unused otherwise (the controller needs a seed to start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..domain import JobGroup
from ..planner import Cancel, MatchCache, PilotView, Plan, SitePlan, SiteSpec, plan

__all__ = ["POLICIES", "CobaldController", "OriginalRule", "PlannerPolicy", "Policy", "make_policy"]

_QUEUED = frozenset({"requested", "queued"})
_RUNNING = frozenset({"running", "joined"})


class Policy(Protocol):
    """What the simulated loop asks of a provisioning policy each cycle."""

    name: str

    def plan(
        self, groups: Sequence[JobGroup], sites: Sequence[SiteSpec], pilots: Sequence[PilotView], now: float
    ) -> Plan: ...


class PlannerPolicy:
    """Ours: :func:`campus_factory.planner.plan`."""

    name = "ours"

    def __init__(self) -> None:
        self.cache = MatchCache()

    def plan(
        self, groups: Sequence[JobGroup], sites: Sequence[SiteSpec], pilots: Sequence[PilotView], now: float
    ) -> Plan:
        return plan(groups, sites, pilots, now, cache=self.cache)


def _room(site: SiteSpec, mine: Sequence[PilotView]) -> int:
    alive = len(mine)
    queued = sum(1 for p in mine if p.state in _QUEUED)
    cap = site.max_pilots if site.ceiling is None else min(site.max_pilots, site.ceiling)
    if not (site.enabled and site.healthy):
        return 0
    room = min(cap - alive, site.max_queued - queued, site.max_submit_per_cycle)
    if site.max_cores is not None:  # the baselines start whole-slot pilots
        room = min(room, (site.max_cores - alive * site.cpus) // max(site.cpus, 1))
    return max(0, room)


def _site_plan(site: SiteSpec, submit: int, cancel: Sequence[Cancel], reason: str) -> SitePlan:
    return SitePlan(site.name, submit, tuple(cancel), submit, 0, None, (reason,))


def _by_site(sites: Sequence[SiteSpec], pilots: Sequence[PilotView]) -> dict[str, list[PilotView]]:
    out: dict[str, list[PilotView]] = {s.name: [] for s in sites}
    for p in sorted(pilots, key=lambda p: p.pilot_id):
        if p.site in out:
            out[p.site].append(p)
    return out


class OriginalRule:
    """The original Campus Factory: one glidein per idle job, anywhere, within limits."""

    name = "original"

    def plan(
        self, groups: Sequence[JobGroup], sites: Sequence[SiteSpec], pilots: Sequence[PilotView], now: float
    ) -> Plan:
        by_site = _by_site(sites, pilots)
        idle = sum(g.count for g in groups)
        want = max(0, idle - sum(1 for p in pilots if p.state in _QUEUED))
        plans = []
        for s in sites:
            n = min(want, _room(s, by_site[s.name]))
            want -= n
            plans.append(_site_plan(s, n, (), f"{idle} idle job(s): {n} glidein(s)"))
        return Plan(now, tuple(plans), ())


class CobaldController:
    """COBalD-style linear utilisation feedback, one controller per site."""

    name = "cobald"

    def __init__(self, *, low: float = 0.5, high: float = 0.9, rate: float = 2.0) -> None:
        self.low, self.high, self.rate = low, high, rate
        self.demand: dict[str, float] = {}

    def utilisation(self, site: SiteSpec, mine: Sequence[PilotView], idle_jobs: int) -> float:
        cores = busy = 0
        for p in mine:
            if p.state in _RUNNING and p.free_cpus is not None:
                cores += site.cpus
                busy += site.cpus - p.free_cpus
        if cores == 0:
            return 1.0 if idle_jobs else 0.0
        return busy / cores

    def plan(
        self, groups: Sequence[JobGroup], sites: Sequence[SiteSpec], pilots: Sequence[PilotView], now: float
    ) -> Plan:
        by_site = _by_site(sites, pilots)
        idle = sum(g.count for g in groups)
        plans = []
        for s in sites:
            mine = [p for p in by_site[s.name] if p.state != "retiring"]
            cap = s.max_pilots if s.ceiling is None else min(s.max_pilots, s.ceiling)
            if s.max_cores is not None:
                cap = min(cap, s.max_cores // max(s.cpus, 1))
            util = self.utilisation(s, mine, idle)
            demand = self.demand.get(s.name, 0.0)
            if util > self.high:
                demand += self.rate
            elif util < self.low:
                demand -= self.rate
            demand = min(max(demand, 0.0), float(cap))
            self.demand[s.name] = demand
            target = int(demand)
            submit = min(max(0, target - len(mine)), _room(s, by_site[s.name]))
            cancels: list[Cancel] = []
            extra = len(mine) - target
            if extra > 0:
                queued = sorted((p for p in mine if p.state in _QUEUED and p.has_job_id), key=lambda p: -p.since)
                idle_pilots = sorted(
                    (p for p in mine if p.state in _RUNNING and p.busy is False), key=lambda p: p.since
                )
                for p in queued[:extra]:
                    cancels.append(Cancel(p.pilot_id, False, "above demand"))
                for p in idle_pilots[: max(0, extra - len(cancels))]:
                    cancels.append(Cancel(p.pilot_id, True, "above demand, idle"))
            reason = f"utilisation {util:.2f}: demand {demand:.1f} pilot(s), {len(mine)} alive"
            plans.append(_site_plan(s, submit, cancels, reason))
        return Plan(now, tuple(plans), ())


POLICIES = ("original", "cobald", "ours")


def make_policy(name: str) -> Policy:
    """A new policy object by name (policies keep state between cycles)."""
    if name == "ours":
        return PlannerPolicy()
    if name == "original":
        return OriginalRule()
    if name == "cobald":
        return CobaldController()
    raise ValueError(f"unknown policy {name!r} (choose from {', '.join(POLICIES)})")
