"""Planner v1: a pure function from what is observed to what to do.

No I/O, no clock reads: everything arrives as arguments, so the same input always gives the
same plan, and every decision carries its reason. For each job group, the first site (in
preference order) whose slot can hold one of its jobs takes it; a site's need is the pilots
its groups fill; supply is the live pilots that can still take work (queued ones included);
the difference is submitted within the site's limits, and a surplus is cancelled: queued
pilots first (newest first), then running pilots idle for longer than the site's idle timeout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ..demand.base import JobGroup
from .types import QUEUED_STATES, Cancel, GroupDecision, PilotView, Plan, SitePlan, SiteSpec

__all__ = ["fits", "jobs_per_pilot", "plan"]


def jobs_per_pilot(group: JobGroup, site: SiteSpec) -> int:
    """How many of the group's jobs one pilot of the site holds (0 when none fits)."""
    limits = [site.cpus // max(group.cpus, 1)]
    if group.memory_mb > 0:
        limits.append(site.memory_mb // group.memory_mb)
    if group.disk_mb > 0 and site.disk_mb > 0:
        limits.append(site.disk_mb // group.disk_mb)
    if group.gpus > 0:
        limits.append(site.gpus // group.gpus)
    return max(0, min(limits))


def fits(group: JobGroup, site: SiteSpec) -> str | None:
    """None when one job fits the site's slot, else what is missing."""
    missing = []
    if group.cpus > site.cpus:
        missing.append(f"cpus {group.cpus} > {site.cpus}")
    if group.memory_mb > site.memory_mb:
        missing.append(f"memory {group.memory_mb} MB > {site.memory_mb} MB")
    if site.disk_mb > 0 and group.disk_mb > site.disk_mb:
        missing.append(f"disk {group.disk_mb} MB > {site.disk_mb} MB")
    if group.gpus > site.gpus:
        missing.append(f"gpus {group.gpus} > {site.gpus}")
    return ", ".join(missing) or None


def _place(groups: Sequence[JobGroup], sites: Sequence[SiteSpec]) -> list[GroupDecision]:
    out = []
    for g in sorted(groups, key=lambda g: g.group_id):
        why_not = []
        chosen = None
        for s in sites:
            if not s.enabled:
                why_not.append(f"{s.name}: disabled")
                continue
            if not s.healthy:
                why_not.append(f"{s.name}: not observed this cycle ({s.health_note})")
                continue
            missing = fits(g, s)
            if missing:
                why_not.append(f"{s.name}: {missing}")
                continue
            chosen = s
            break
        if chosen is None:
            reason = "no site can take it: " + ("; ".join(why_not) or "no sites configured")
            out.append(GroupDecision(g.group_id, g.count, None, 0, 0, reason))
            continue
        per = jobs_per_pilot(g, chosen)
        n = math.ceil(g.count / per)
        out.append(
            GroupDecision(
                g.group_id,
                g.count,
                chosen.name,
                n,
                per,
                f"{g.count} idle job(s), {per} per pilot at {chosen.name}: {n} pilot(s)",
            )
        )
    return out


def _site_plan(site: SiteSpec, needed: int, pilots: Sequence[PilotView], now: float) -> SitePlan:
    reasons: list[str] = []
    live = [p for p in pilots if p.state != "retiring"]
    queued = [p for p in pilots if p.state in QUEUED_STATES]
    supply_pilots = [p for p in live if p.busy is not True]
    supply = len(supply_pilots)
    if not site.healthy:
        reasons.append(f"not observed this cycle ({site.health_note}): no action")
        return SitePlan(site.name, 0, (), needed, supply, "unhealthy", tuple(reasons))
    reasons.append(f"needs {needed} pilot(s); supply {supply} (of {len(pilots)} alive)")
    submit, bound = 0, None
    cancels: list[Cancel] = []
    deficit = needed - supply
    if deficit > 0 and site.enabled:
        room = {
            "max_pilots": site.max_pilots - len(pilots),
            "max_queued": site.max_queued - len(queued),
            "max_submit_per_cycle": site.max_submit_per_cycle,
        }
        submit = max(0, min(deficit, *room.values()))
        if submit < deficit:
            bound = min(room, key=lambda k: room[k])
            reasons.append(f"wants {deficit} more, limited to {submit} by {bound}={getattr(site, bound)}")
        else:
            reasons.append(f"submits {submit}")
    elif deficit > 0:
        bound = "disabled"
        reasons.append("site disabled: submits nothing")
    elif deficit < 0:
        surplus = -deficit
        for p in sorted(queued, key=lambda p: (-p.since, p.pilot_id)):
            if surplus == 0:
                break
            if not p.has_job_id or p.busy is True:
                continue
            cancels.append(Cancel(p.pilot_id, False, "queued pilot no longer needed"))
            surplus -= 1
        idle = [
            p
            for p in live
            if p.state in ("running", "joined")
            and p.busy is not True
            and now - p.since >= site.idle_timeout_s
        ]
        for p in sorted(idle, key=lambda p: (p.since, p.pilot_id)):
            if surplus == 0:
                break
            cancels.append(Cancel(p.pilot_id, True, f"idle for {now - p.since:.0f} s >= idle_timeout"))
            surplus -= 1
        reasons.append(f"surplus {-deficit}: cancels {len(cancels)}")
    return SitePlan(site.name, submit, tuple(cancels), needed, supply, bound, tuple(reasons))


def plan(
    demand: Iterable[JobGroup],
    sites: Sequence[SiteSpec],
    pilots: Iterable[PilotView],
    now: float,
) -> Plan:
    """The plan for this cycle. Pure: same arguments, same plan."""
    groups = [g for g in demand if g.count > 0]
    decisions = _place(groups, sites)
    needed = {s.name: 0 for s in sites}
    for d in decisions:
        if d.site is not None:
            needed[d.site] += d.pilots
    by_site: dict[str, list[PilotView]] = {s.name: [] for s in sites}
    notes = []
    for p in pilots:
        if p.site in by_site:
            by_site[p.site].append(p)
        else:
            notes.append(f"pilot {p.pilot_id} is at {p.site}, a site no longer configured")
    site_plans = tuple(_site_plan(s, needed[s.name], by_site[s.name], now) for s in sites)
    unmatched = sum(1 for d in decisions if d.site is None)
    if unmatched:
        notes.append(f"{unmatched} job group(s) match no site and get no pilots")
    return Plan(now, site_plans, tuple(decisions), tuple(notes))
