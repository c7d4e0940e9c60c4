"""Planner v2: a pure function from what is observed to what to do, with reasons.

No I/O, no clock reads: everything arrives as arguments (a :class:`MatchCache` only memoises
deterministic match results), so the same input always gives the same plan.

1. **Match** every job group against every site, both ways (:mod:`.match`). A group that
   matches no site is reported and never provisioned for.
2. **Budget** per site: new pilots allowed this cycle = the tightest of ``max_pilots``,
   ``max_queued``, ``max_submit_per_cycle`` and the ceiling, zero when the site is disabled,
   unobserved or backing off, one pilot in the queue at a time while probing.
3. **Place** groups, largest jobs first (first-fit decreasing), each over its matched sites
   in preference order — rank (higher first), cost per core-hour, recent start latency (whole
   minutes), config order — into the capacity already there, then into new pilots within the budget, spilling
   to the next site when one cannot take all (:mod:`.packing`).
4. **Floor, offline signal**: a site below its floor gets pilots up to it; a site whose offline
   ad the negotiator matched recently, and that none of the visible groups matches, gets
   enough pilots for the matched requests (jobs the factory cannot see).
5. **Cancel** what nothing needs: unused queued pilots (newest first), unused running pilots
   idle past the site's idle timeout (gracefully, oldest first), never below the floor; and
   pilots beyond the ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..domain import JobGroup
from .match import MatchCache, MatchOutcome, group_key, job_runtime_s
from .packing import Shape, SiteBins, per_bin
from .types import QUEUED_STATES, Cancel, GroupDecision, PilotSize, PilotView, Placement, Plan, SitePlan, SiteSpec

__all__ = ["fits", "jobs_per_pilot", "plan", "site_order"]

_INF = float("inf")


def _slot(site: SiteSpec) -> Shape:
    return (site.cpus, site.memory_mb, site.disk_mb if site.disk_mb > 0 else -1, site.gpus)


def _own(site: SiteSpec, p: PilotView) -> Shape:
    """A pilot's resources: as requested at a site sizing pilots to demand, else the site's slot
    (which learned pilot ads may have refined)."""
    full = _slot(site)
    if site.sizing != "fit":
        return full
    disk = full[2] if full[2] < 0 or p.disk_mb is None else p.disk_mb
    return (
        full[0] if p.cpus is None else p.cpus,
        full[1] if p.memory_mb is None else p.memory_mb,
        disk,
        full[3] if p.gpus is None else p.gpus,
    )


def _shape(g: JobGroup) -> Shape:
    return (max(g.cpus, 1), max(g.memory_mb, 0), max(g.disk_mb, 0), max(g.gpus, 0))


def jobs_per_pilot(group: JobGroup, site: SiteSpec) -> int:
    """How many of the group's jobs one empty pilot of the site holds (0 when none fits)."""
    return per_bin(_slot(site), _shape(group))


def fits(group: JobGroup, site: SiteSpec) -> str | None:
    """None when one job fits the site's slot (resources only), else what is missing."""
    from .match import resource_misfit

    return resource_misfit(group, site) or None


def site_order(site: SiteSpec, index: int) -> tuple[float, float, float, int]:
    """Preference key (smaller first): rank, cost per core-hour, start latency, config order.

    Latency counts in whole minutes (sites a few seconds apart keep their config order); a site
    with no recent start counts as fast, so it gets tried.
    """
    latency = site.health.start_latency_s if site.health and site.health.start_latency_s else 0.0
    return (-site.rank, site.cost_per_core_hour, float(int(latency // 60)), index)


@dataclass
class _Site:
    spec: SiteSpec
    index: int
    pilots: list[PilotView]
    bins: SiteBins
    bound: str | None
    rooms: dict[str, int]
    reasons: list[str] = field(default_factory=list)
    matched_groups: int = 0
    exhausted: bool = False
    key: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)

    def __post_init__(self) -> None:
        self.key = site_order(self.spec, self.index)


def _weight(site: SiteSpec, p: PilotView) -> int:
    """What a pilot counts against the site's pilot limits: 1 at a fixed site; its cores at a fit
    site, whose limits count cores in whole slots (``max_pilots = 10`` with 16-core slots: 160 cores
    in pilots of any size)."""
    return _own(site, p)[0] if site.sizing == "fit" else 1


def _budget(site: SiteSpec, pilots: Sequence[PilotView]) -> tuple[int, int | None, str | None, dict[str, int]]:
    """(new pilots, new cores or None, what stops the site, room left per limit).

    At a fixed site every room is in pilots (``max_cores`` in whole slots) and there is no core
    budget. At a fit site the pilot limits are rooms in cores (each limit times the slot's cores),
    ``max_cores`` is in cores, and the pilot count is bounded only while probing.
    """
    fit = site.sizing == "fit"
    unit = max(site.cpus, 1) if fit else 1
    alive = sum(_weight(site, p) for p in pilots)
    queued = sum(_weight(site, p) for p in pilots if p.state in QUEUED_STATES)
    rooms = {
        "max_pilots": site.max_pilots * unit - alive,
        "max_queued": site.max_queued * unit - queued,
        "max_submit_per_cycle": site.max_submit_per_cycle * unit,
    }
    if site.ceiling is not None:
        rooms["ceiling"] = site.ceiling * unit - alive
    if site.max_cores is not None:
        left = site.max_cores - sum(_own(site, p)[0] for p in pilots)
        rooms["max_cores"] = left if fit else left // max(site.cpus, 1)
    health = site.health
    pilots_room = None
    if not site.healthy:
        return 0, 0 if fit else None, "unhealthy", rooms
    if not site.enabled:
        return 0, 0 if fit else None, "disabled", rooms
    if health is not None and health.state == "backoff":
        return 0, 0 if fit else None, "black_hole" if health.black_hole else "backoff", rooms
    if health is not None and health.state == "probing":
        pilots_room = 1 - sum(1 for p in pilots if p.state in QUEUED_STATES)
        rooms["probing"] = pilots_room * unit  # one pilot in the queue (at a fit site: at most a slot)
    room = max(0, min(rooms.values()))
    if not fit:
        return room, None, None, rooms
    return (room if pilots_room is None else max(0, pilots_room)), room, None, rooms


def _bins(site: SiteSpec, pilots: Sequence[PilotView], budget: int, cores: int | None, now: float) -> SiteBins:
    """Capacity already there. At a ``fit`` site a pilot takes only jobs that fill all its cores
    (its glidein's START), never a smaller one; the site's slot ad has no such clause."""
    fit = site.sizing == "fit"
    bins = SiteBins(_slot(site), site.walltime_s, budget, fit=fit, core_budget=cores)
    running = sorted((p for p in pilots if p.state in ("running", "joined")), key=lambda p: (p.since, p.pilot_id))
    queued = sorted((p for p in pilots if p.state in QUEUED_STATES), key=lambda p: (p.since, p.pilot_id))
    for p in running:
        full = _own(site, p)
        if p.busy is True and p.free_cpus is None:
            free: Shape = (0, 0, 0, 0)
        else:
            free = (
                full[0] if p.free_cpus is None else p.free_cpus,
                full[1] if p.free_memory_mb is None else p.free_memory_mb,
                full[2] if p.free_disk_mb is None or full[2] < 0 else p.free_disk_mb,
                full[3] if p.free_gpus is None else p.free_gpus,
            )
        life = _INF if p.retire_at is None else p.retire_at - now
        bins.add_existing(p.pilot_id, free, life, full[0] if fit else 0)
    if site.enabled:  # a disabled site's queued pilots are not capacity: they are cancelled
        for p in queued:
            own = _own(site, p)
            bins.add_existing(p.pilot_id, own, site.walltime_s, own[0] if fit else 0)
    return bins


def _size_key(g: JobGroup) -> tuple[int, int, int, int, str]:
    return (-g.gpus, -g.cpus, -g.memory_mb, -g.disk_mb, g.group_id)


def _runtime(declared: float | None, site: SiteSpec) -> float:
    """The lifetime a pilot needs left to count as capacity for a job.

    Capped at half a pilot's usable life (walltime less the retire margin): a job as long as a
    whole pilot fits no running pilot (each has less than its walltime left), and without the cap
    running pilots would never count for it,
    so every cycle would start more pilots for jobs that are about to land on existing ones.
    """
    runtime = declared if declared is not None else site.job_runtime_s
    return min(runtime, max(0.0, site.walltime_s - site.retire_margin_s) / 2)


def _place(g: JobGroup, outcomes: Sequence[MatchOutcome], states: Sequence[_Site]) -> tuple[GroupDecision, list[_Site]]:
    matched = [st for st, o in zip(states, outcomes, strict=True) if o.ok]
    names = tuple(st.spec.name for st in matched)
    if not matched:
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.failed] = counts.get(o.failed, 0) + 1
        why = ", ".join(
            f"{k} false at {n} site(s)" if k != "resources" else f"too big for {n} site(s)"
            for k, n in sorted(counts.items())
        )
        reason = "matches no site" + (f": {why}" if why else ": no sites configured")
        bad_ad = next((o.detail for o in outcomes if o.failed == "ad"), "")
        if bad_ad:  # a job ad beyond the bounds, or that does not parse, says so once
            reason += f" ({bad_ad[:300]})"
        return GroupDecision(g.group_id, g.count, None, 0, 0, reason, names), []
    usable = sorted((st for st in matched if st.spec.healthy), key=lambda st: st.key)
    shape = _shape(g)
    declared = job_runtime_s(g)
    left = g.count
    placements: list[Placement] = []
    bound: list[str] = []
    for st in usable:
        if left == 0:
            break
        placed, existing, opened = st.bins.take(shape, _runtime(declared, st.spec), left)
        if placed:
            placements.append(Placement(st.spec.name, placed, existing, opened))
            left -= placed
        if left > 0:
            st.exhausted = True
            limit = st.bound or min(st.rooms, key=lambda k: st.rooms[k])
            bound.append(f"{st.spec.name}: {limit}")
    if left:
        bound.extend(f"{st.spec.name}: unhealthy" for st in matched if not st.spec.healthy)
    pilots = sum(p.new_pilots for p in placements)
    first = placements[0].site if placements else None
    spec = next((st.spec for st in usable if st.spec.name == first), None)
    per = (1 if spec.sizing == "fit" else jobs_per_pilot(g, spec)) if spec is not None and first else 0
    where = "; ".join(
        f"{p.jobs} at {p.site} ({p.into_existing} into existing, {p.new_pilots} new pilot(s))" for p in placements
    )
    reason = f"{g.count} idle job(s), matches {len(matched)} site(s)"
    reason += f": {where}" if where else ": nothing placed"
    if left:
        reason += f"; {left} held back by {', '.join(bound) or 'limits'}"
    decision = GroupDecision(
        g.group_id, g.count, first, pilots, per, reason, names, tuple(placements), left, tuple(bound)
    )
    return decision, matched


def _idle_since(p: PilotView) -> float:
    """Since when a pilot has had no job: its last job's end when known, else its state change."""
    return p.since if p.idle_since is None else max(p.since, p.idle_since)


def _cancels(st: _Site, submit: int, now: float) -> list[Cancel]:
    spec = st.spec
    used = st.bins.used_pilots()
    active = [p for p in st.pilots if p.state != "retiring"]
    floor = spec.floor if spec.enabled else 0
    keep_floor = max(0, len(active) + submit - floor)
    cap = spec.max_pilots if spec.ceiling is None else min(spec.max_pilots, spec.ceiling)
    unit = max(spec.cpus, 1) if spec.sizing == "fit" else 1
    excess = sum(_weight(spec, p) for p in active) - cap * unit  # in pilots, or cores at a fit site
    what = f"{cap} pilot(s)" if unit == 1 else f"{cap} slot(s) of {unit} core(s)"
    cancels: list[Cancel] = []
    chosen: set[str] = set()
    queued = sorted(
        (p for p in active if p.state in QUEUED_STATES and p.has_job_id and p.busy is not True),
        key=lambda p: (-p.since, p.pilot_id),
    )
    idle = sorted(
        (p for p in active if p.state in ("running", "joined") and p.busy is not True),
        key=lambda p: (_idle_since(p), p.pilot_id),
    )
    for group, graceful in ((queued, False), (idle, True)):  # beyond the ceiling, used or not
        for p in group:
            if excess <= 0:
                break
            cancels.append(Cancel(p.pilot_id, graceful, f"above the ceiling of {what}"))
            chosen.add(p.pilot_id)
            excess -= _weight(spec, p)
    room = keep_floor - len(cancels)
    for p in queued:
        if room <= 0:
            break
        if p.pilot_id in used or p.pilot_id in chosen:
            continue
        cancels.append(Cancel(p.pilot_id, False, "queued pilot no longer needed"))
        room -= 1
    for p in idle:
        if room <= 0:
            break
        idle_for = now - _idle_since(p)
        if p.pilot_id in used or p.pilot_id in chosen or idle_for < spec.idle_timeout_s:
            continue
        cancels.append(Cancel(p.pilot_id, True, f"idle for {idle_for:.0f} s >= idle_timeout"))
        room -= 1
    return cancels


def _sizes(spec: SiteSpec, opened: dict[Shape, int], submit: int) -> tuple[PilotSize, ...]:
    """New pilots by size: the fitted ones, then whole-slot pilots (floor, offline requests)."""
    out: list[PilotSize] = []
    for (c, m, d, g), n in opened.items():
        out.append((c, m, d if d >= 0 else spec.disk_mb, g, n))
    extra = submit - sum(n for *_, n in out)
    if extra > 0:
        out.append((spec.cpus, spec.memory_mb, spec.disk_mb, spec.gpus, extra))
    return tuple(out)


def _site_plan(st: _Site, now: float) -> SitePlan:
    spec, bins = st.spec, st.bins
    health = spec.health.state if spec.health else "ok"
    reasons = list(spec.health.reasons) if spec.health else []
    supply = bins.capacity()
    if not spec.healthy:
        reasons.append(f"not observed this cycle ({spec.health_note}): no action")
        return SitePlan(spec.name, 0, (), 0, supply, "unhealthy", tuple(reasons), 0, "unhealthy")
    submit = bins.new_pilots
    if bins.core_budget is None:
        budget_left = max(0, bins.budget - submit)
    else:  # floor and offline-request pilots have the whole slot
        budget_left = min(max(0, bins.budget - submit), max(0, bins.core_budget - bins.new_cores) // max(spec.cpus, 1))
    active = sum(1 for p in st.pilots if p.state != "retiring")
    if spec.floor and active + submit < spec.floor:
        extra = min(spec.floor - active - submit, budget_left)
        reasons.append(f"floor {spec.floor}: {extra} more pilot(s)" + ("" if extra else " (no room)"))
        submit += extra
        budget_left -= extra
    if spec.offline_requests > 0 and st.matched_groups == 0:
        unused = supply - len(bins.used_pilots())
        want = max(0, math.ceil(spec.offline_requests / max(spec.cpus, 1)) - unused - submit)
        extra = min(want, budget_left)
        reasons.append(
            f"negotiator matched the offline ad for {spec.offline_requests} request(s) no visible "
            f"group explains: {extra} pilot(s)"
        )
        submit += extra
    sizes = _sizes(spec, bins.opened, submit) if spec.sizing == "fit" else ()
    if sizes:
        shown = ", ".join(f"{n} x {c} core(s)/{m} MB" + (f"/{g} GPU(s)" if g else "") for c, m, _, g, n in sizes)
        reasons.append(f"pilots sized to their jobs: {shown}")
    used = len(bins.used_pilots())
    needed = used + bins.new_pilots
    reasons.append(
        f"{bins.jobs} job(s) placed from {st.matched_groups} matched group(s): needs {needed} pilot(s); "
        f"supply {supply} (of {len(st.pilots)} alive), {used} used"
    )
    bound = st.bound
    if st.exhausted and bound is None:
        bound = min(st.rooms, key=lambda k: st.rooms[k])
    if bound is not None and st.exhausted:
        rooms = ", ".join(f"{k} {max(v, 0)}" for k, v in st.rooms.items())
        reasons.append(f"limited to {submit} new pilot(s) by {bound} (room left before this cycle: {rooms})")
    elif submit:
        reasons.append(f"submits {submit}")
    cancels = _cancels(st, submit, now)
    if cancels:
        reasons.append(f"cancels {len(cancels)}")
    return SitePlan(
        spec.name,
        submit,
        tuple(cancels),
        needed,
        supply,
        bound if st.exhausted else None,
        tuple(reasons),
        bins.jobs,
        health,
        sizes,
    )


def plan(
    demand: Iterable[JobGroup],
    sites: Sequence[SiteSpec],
    pilots: Iterable[PilotView],
    now: float,
    *,
    cache: MatchCache | None = None,
) -> Plan:
    """The plan for this cycle. Pure: same arguments, same plan (with or without ``cache``)."""
    cache = cache if cache is not None else MatchCache()
    cache.begin()
    groups = sorted((g for g in demand if g.count > 0), key=_size_key)
    by_site: dict[str, list[PilotView]] = {s.name: [] for s in sites}
    notes: list[str] = []
    for p in sorted(pilots, key=lambda p: p.pilot_id):
        if p.site in by_site:
            by_site[p.site].append(p)
        else:
            notes.append(f"pilot {p.pilot_id} is at {p.site}, a site no longer configured")
    states = []
    for i, s in enumerate(sites):
        budget, cores, bound, rooms = _budget(s, by_site[s.name])
        states.append(_Site(s, i, by_site[s.name], _bins(s, by_site[s.name], budget, cores, now), bound, rooms))
    decisions: list[GroupDecision] = []
    site_keys = [(s, cache.site_key(s)) for s in sites]
    for g in groups:
        key = group_key(g)
        outcomes = [cache.match(g, s, key, sk) for s, sk in site_keys]
        decision, matched = _place(g, outcomes, states)
        for st in matched:
            st.matched_groups += 1
        decisions.append(decision)
    cache.end()
    site_plans = tuple(_site_plan(st, now) for st in states)
    unmatched = sum(1 for d in decisions if not d.matched)
    if unmatched:
        notes.append(f"{unmatched} job group(s) match no site and get no pilots")
    held = sum(1 for d in decisions if d.held_back)
    if held:
        notes.append(f"{held} job group(s) partly held back by site limits")
    decisions.sort(key=lambda d: d.group_id)
    return Plan(now, site_plans, tuple(decisions), tuple(notes))
