"""Planner v2: a pure function from what is observed to what to do, with reasons.

No I/O, no clock reads: everything arrives as arguments (a :class:`MatchCache` only memoises
deterministic match results), so the same input always gives the same plan.

1. **Match** every job group against every site, both ways (:mod:`.match`). A group that
   matches no site is reported and never provisioned for.
2. **Budget** per site: new pilots allowed this cycle = the tightest of ``max_pilots``,
   ``max_queued``, ``max_submit_per_cycle`` and the ceiling (in cores of whole slots at a site
   sizing pilots to demand), zero when the site is disabled, unobserved or backing off, one pilot
   in the queue at a time while probing.
3. **Place** groups, those matching fewest sites first (cloud-only jobs on cloud capacity), then
   largest jobs first (first-fit decreasing): into the capacity already there over the matched
   sites in preference order — rank (higher first), cost per core-hour, recent start latency
   (whole minutes), config order — then into new pilots within the budget, at the sites whose
   new pilots are expected to start soonest first (:mod:`.warm`), spilling to the next site when
   one cannot take all (:mod:`.packing`); at a cloud site listing instance types, new pilots are
   the cheapest type that fits (:mod:`.flavors`). Between the two, **claim reuse**: idle jobs that
   running jobs of their group, expected to end before a new pilot would join, will take over
   get no new pilot (:mod:`.reuse`). Then the **warm buffer**: for groups whose jobs have
   been arriving, pilots for the jobs expected while new pilots start (:mod:`.warm`).
4. **Floor, offline signal**: a site below its floor gets pilots up to it; a site whose offline
   ad the negotiator matched recently, and that none of the visible groups matches, gets
   enough pilots for the matched requests (jobs the factory cannot see).
5. **Cancel** what nothing needs: unused queued pilots (newest first), unused running pilots
   idle past the site's idle timeout counted from their last job's end (at once for a pilot
   sized to demand: :data:`.warm.IDLE_GRACE_S`), gracefully, oldest first, never below the
   floor; and pilots beyond the ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..domain import JobGroup
from .cancel import cancels
from .flavors import choose_type
from .match import MatchCache, MatchOutcome, group_key
from .packing import Shape, SiteBins
from .reuse import finishing_claims, reuse_note
from .runtime import group_runtime, runtime_note
from .state import SiteState, fits, job_shape, jobs_per_pilot, site_bins, site_budget, site_order
from .types import GroupDecision, PilotSize, PilotView, Placement, Plan, SitePlan, SiteSpec
from .warm import buffer_jobs, expected_start_s, latency_note, start_bucket

__all__ = ["fits", "jobs_per_pilot", "plan", "site_order"]


def _size_key(g: JobGroup) -> tuple[int, int, int, int, str]:
    return (-g.gpus, -g.cpus, -g.memory_mb, -g.disk_mb, g.group_id)


def _runtime(declared: float | None, site: SiteSpec) -> float:
    """The lifetime a pilot needs left to count as capacity for a job: the group's runtime
    (declared, else learned from its recorded runs: :mod:`.runtime`), else the site's.

    Capped at half a pilot's usable life (walltime less the retire margin): a job as long as a
    whole pilot fits no running pilot (each has less than its walltime left), and without the cap
    running pilots would never count for it,
    so every cycle would start more pilots for jobs that are about to land on existing ones.
    """
    runtime = declared if declared is not None else site.job_runtime_s
    return min(runtime, max(0.0, site.walltime_s - site.retire_margin_s) / 2)


def _place(
    g: JobGroup, outcomes: Sequence[MatchOutcome], states: Sequence[SiteState], now: float
) -> tuple[GroupDecision, list[SiteState]]:
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
        return GroupDecision(g.group_id, g.count, None, 0, 0, reason, names, runtime=runtime_note(g)), []
    usable = sorted((st for st in matched if st.spec.healthy), key=lambda st: st.key)
    shape = job_shape(g)
    declared = group_runtime(g)
    within = _by_start(usable)[0].expected if usable else 0.0
    claims = finishing_claims(g, within, now)
    left, got, bound, kinds, reused = _spread(usable, shape, declared, g.count, claims=claims)
    placements = [Placement(name, j, e, n, kinds.get(name, "")) for name, (j, e, n) in got.items()]
    if left:
        bound.extend(f"{st.spec.name}: unhealthy" for st in matched if not st.spec.healthy)
    pilots = sum(p.new_pilots for p in placements)
    first = placements[0].site if placements else None
    spec = next((st.spec for st in usable if st.spec.name == first), None)
    per = 0
    if spec is not None and first:
        per = 1 if spec.sizing == "fit" and not spec.instance_types else jobs_per_pilot(g, spec)
    where = "; ".join(
        f"{p.jobs} at {p.site} ({p.into_existing} into existing, {p.new_pilots} new pilot(s)"
        + (f" of type {p.instance_type}" if p.instance_type and p.new_pilots else "")
        + ")"
        for p in placements
    )
    reason = f"{g.count} idle job(s), matches {len(matched)} site(s)"
    reason += f": {where}" if where else ": nothing placed"
    if reused:
        reason += f"; {reuse_note(g, reused, within)}"
    if left:
        reason += f"; {left} held back by {', '.join(bound) or 'limits'}"
    note = runtime_note(g, [st.spec for st in matched])
    decision = GroupDecision(
        g.group_id,
        g.count,
        first,
        pilots,
        per,
        reason,
        names,
        tuple(placements),
        left,
        tuple(bound),
        runtime=note,
        claims=reused,
    )
    return decision, matched


def _by_start(usable: Sequence[SiteState]) -> list[SiteState]:
    """Sites for new pilots: within the tolerance of the fastest expected start in preference order,
    then the slower ones, fastest first (planner.warm)."""
    fastest = min((st.expected for st in usable), default=0.0)
    return sorted(usable, key=lambda st: (start_bucket(st.expected, fastest), st.key))


def _spread(
    usable: Sequence[SiteState],
    shape: Shape,
    declared: float | None,
    want: int,
    *,
    buffer: bool = False,
    claims: int = 0,
) -> tuple[int, dict[str, list[int]], list[str], dict[str, str], int]:
    """Place ``want`` jobs: capacity already there in preference order, then up to ``claims`` to
    finishing claims of the group (planner.reuse), then new pilots by expected start. Returns
    (left, site -> [jobs, into existing, new pilots], limits that bound, site -> instance type of
    its new pilots, jobs left to claims)."""
    left = want
    got: dict[str, list[int]] = {}
    bound: list[str] = []
    kinds: dict[str, str] = {}
    reused = 0
    for new, order in ((False, usable), (True, _by_start(usable))):
        if new and claims > 0:
            reused = min(left, claims)
            left -= reused
        for st in order:
            if left == 0:
                break
            placed, existing, opened = st.bins.take(shape, _runtime(declared, st.spec), left, existing=not new, new=new)
            if placed:
                row = got.setdefault(st.spec.name, [0, 0, 0])
                row[0] += placed
                row[1] += existing
                row[2] += opened
                left -= placed
                if new and opened and st.bins.last_type:
                    kinds[st.spec.name] = st.bins.last_type
                if buffer:
                    st.buffered += placed
            if new and left > 0 and not buffer:
                st.exhausted = True
                why = st.bound or st.bins.misfit or min(st.rooms, key=lambda k: st.rooms[k])
                bound.append(f"{st.spec.name}: {why}")
    return left, got, bound, kinds, reused


def _buffer(g: JobGroup, d: GroupDecision, states: Sequence[SiteState], now: float) -> GroupDecision:
    """The warm buffer of a group with recent arrivals, after every idle job is placed, less the
    arrivals that claims of its finishing jobs will take (those the idle jobs did not)."""
    usable = sorted((st for st in states if st.spec.name in d.matched and st.spec.healthy), key=lambda st: st.key)
    if not usable or d.held_back:
        return d
    first = _by_start(usable)[0]
    arriving = buffer_jobs(g, first.expected)
    spare = max(0, finishing_claims(g, first.expected, now) - d.claims)
    want = arriving - spare
    if want <= 0:
        return d
    left, got, _, _, _ = _spread(usable, job_shape(g), group_runtime(g), want, buffer=True)
    placed = want - left
    if placed <= 0:
        return d
    where = ", ".join(f"{n} at {s} ({e} into existing, {p} new pilot(s))" for s, (n, e, p) in got.items())
    less = f", less {spare} to claims of finishing jobs" if spare else ""
    reason = (
        f"{d.reason}; warm buffer for {placed} arriving job(s) ({g.arrivals_per_hour:.0f}/h x "
        f"{first.expected:.0f} s start at {first.spec.name}{less}): {where}"
    )
    return replace(d, reason=reason, pilots=d.pilots + sum(p for *_, p in got.values()), buffer=placed)


def _sizes(spec: SiteSpec, bins: SiteBins, submit: int) -> tuple[tuple[PilotSize, ...], tuple[str, ...]]:
    """New pilots by size: the fitted ones, then whole-slot pilots (floor, offline requests; at a
    site with instance types: the cheapest type for a one-core job). Also each size's instance type."""
    out: list[PilotSize] = []
    for (c, m, d, g), n in bins.opened.items():
        out.append((c, m, d if d >= 0 else spec.disk_mb, g, n))
    names = [bins.types.get(s, "") for s in bins.opened]
    extra = submit - sum(n for *_, n in out)
    if extra > 0:
        base = choose_type(spec.instance_types, (1, 0, 0, 0))
        if base is not None:
            out.append((base.cpus, base.memory_mb, base.disk_mb, base.gpus, extra))
            names.append(base.name)
        else:
            out.append((spec.cpus, spec.memory_mb, spec.disk_mb, spec.gpus, extra))
            names.append("")
    return tuple(out), tuple(names)


def _shape(cpus: int, memory_mb: int, gpus: int) -> str:
    return f"{cpus} core(s)/{memory_mb} MB" + (f"/{gpus} GPU(s)" if gpus else "")


def _site_plan(st: SiteState, now: float) -> SitePlan:
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
    sizes, kinds = _sizes(spec, bins, submit) if spec.sizing == "fit" or spec.instance_types else ((), ())
    if sizes:
        shown = ", ".join(
            f"{n} x " + (f"{k} ({_shape(c, m, g)})" if k else _shape(c, m, g))
            for (c, m, _, g, n), k in zip(sizes, kinds, strict=True)
        )
        what = "instance types, cheapest that fits their jobs" if spec.instance_types else "pilots sized to their jobs"
        reasons.append(f"{what}: {shown}")
    reasons.append(latency_note(spec, st.expected))
    if st.buffered:
        reasons.append(f"warm buffer: {st.buffered} job(s) expected to arrive while new pilots start")
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
    cancel = cancels(st, submit, now)
    if cancel:
        reasons.append(f"cancels {len(cancel)}")
    return SitePlan(
        spec.name,
        submit,
        tuple(cancel),
        needed,
        supply,
        bound if st.exhausted else None,
        tuple(reasons),
        bins.jobs,
        health,
        sizes,
        st.expected,
        latency_note(spec, st.expected),
        kinds,
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
        budget, cores, bound, rooms = site_budget(s, by_site[s.name])
        st = SiteState(s, i, by_site[s.name], site_bins(s, by_site[s.name], budget, cores, now), bound, rooms)
        st.expected = expected_start_s(s, by_site[s.name], now)
        states.append(st)
    decisions: list[GroupDecision] = []
    site_keys = [(s, cache.site_key(s)) for s in sites]
    matched_by = [(g, [cache.match(g, s, group_key(g), sk) for s, sk in site_keys]) for g in groups]
    # groups with fewer places to go first (cloud-only jobs on cloud capacity before jobs that could
    # run anywhere), then largest jobs first (first-fit decreasing)
    matched_by.sort(key=lambda t: (sum(1 for o in t[1] if o.ok) or len(sites) + 1, _size_key(t[0])))
    for g, outcomes in matched_by:
        decision, matched = _place(g, outcomes, states, now)
        for st in matched:
            st.matched_groups += 1
        decisions.append(decision)
    cache.end()
    by_id = {g.group_id: g for g in groups}
    decisions = [
        _buffer(by_id[d.group_id], d, states, now) if by_id[d.group_id].arrivals_per_hour > 0 else d for d in decisions
    ]
    site_plans = tuple(_site_plan(st, now) for st in states)
    unmatched = sum(1 for d in decisions if not d.matched)
    if unmatched:
        notes.append(f"{unmatched} job group(s) match no site and get no pilots")
    held = sum(1 for d in decisions if d.held_back)
    if held:
        notes.append(f"{held} job group(s) partly held back by site limits")
    decisions.sort(key=lambda d: d.group_id)
    return Plan(now, site_plans, tuple(decisions), tuple(notes))
