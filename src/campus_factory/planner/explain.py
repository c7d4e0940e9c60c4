"""Explaining a plan: what each site gets, where each job group goes, and why not elsewhere.

:func:`explain_plan` renders a whole plan; :func:`explain_group` gives, for one job group, each
site's match result (with the clauses that were false), the capacity counted there, the limit
that bound, the pilots planned, and the runtime assumed for its jobs with where it came from
(declared, learned from recorded runs, or the site's default: :mod:`.runtime`). Both are pure
(the cache only saves evaluations). The text shows user-written values (group ids, owners,
Requirements) escaped: a line break or a terminal escape in them never makes a line of its own
(:func:`campus_factory.domain.printable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..domain import JobGroup, printable
from .match import MatchCache
from .runtime import runtime_note
from .types import Plan, SiteSpec

__all__ = ["explain_group", "explain_plan", "group_explanation", "render_group_explanation"]


def explain_plan(plan: Plan) -> str:
    lines = ["Sites:"]
    for sp in plan.sites:
        head = f"  {sp.site}: submit {sp.submit}, cancel {len(sp.cancel)}"
        if sp.health != "ok":
            head += f" [{sp.health}]"
        if sp.bound_by:
            head += f" (bound by {sp.bound_by})"
        lines.append(head)
        lines.extend(f"    - {r}" for r in sp.reasons)
        lines.extend(f"    - cancel {c.pilot_id}: {c.reason}" for c in sp.cancel)
    lines.append("Job groups:")
    if not plan.groups:
        lines.append("  (no idle jobs)")
    for g in plan.groups:
        where = g.site or "nowhere"
        lines.append(f"  {g.group_id} -> {where}: {g.reason}")
        if g.runtime:
            lines.append(f"    - runtime: {g.runtime}")
    if plan.notes:
        lines.append("Notes:")
        lines.extend(f"  - {n}" for n in plan.notes)
    return "\n".join(printable(line) for line in lines)  # one field never makes two lines


def group_explanation(
    plan: Plan, group: JobGroup, sites: Sequence[SiteSpec], cache: MatchCache | None = None
) -> dict[str, Any]:
    """Plain data: the group's decision and, per site, match, capacity, limit, pilots planned."""
    cache = cache if cache is not None else MatchCache()
    decision = plan.group(group.group_id)
    placed = {p.site: p for p in decision.placements}
    bound = dict(b.split(": ", 1) for b in decision.bound_by if ": " in b)
    rows = []
    for s in sites:
        outcome = cache.match(group, s)
        sp = plan.site(s.name)
        row: dict[str, Any] = {
            "site": s.name,
            "match": "yes" if outcome.ok else f"no: {outcome.failed}",
            "failed": [],
            "capacity": f"{sp.supply} pilot(s) there, {sp.jobs} job(s) placed in all",
            "start": sp.start_note,
            "limit": bound.get(s.name),
            "site_bound_by": sp.bound_by,
            "jobs": 0,
            "new_pilots": 0,
            "into_existing": 0,
            "instance_type": "",
        }
        if outcome.detail:
            row["failed"].append({"side": outcome.failed, "clause": outcome.detail, "value": ""})
        if not outcome.ok and outcome.failed in ("job Requirements", "site START"):
            row["failed"] = [
                {"side": side, "clause": clause, "value": value} for side, clause, value in cache.clauses(group, s)
            ]
        p = placed.get(s.name)
        if p is not None:
            row.update(
                jobs=p.jobs, new_pilots=p.new_pilots, into_existing=p.into_existing, instance_type=p.instance_type
            )
        rows.append(row)
    return {
        "group": group.group_id,
        "owner": group.owner,
        "idle_jobs": group.count,
        "request": {"cpus": group.cpus, "memory_mb": group.memory_mb, "disk_mb": group.disk_mb, "gpus": group.gpus},
        "requirements": group.requirements,
        "decision": decision.reason,
        "runtime": decision.runtime or runtime_note(group, sites),
        "buffer": decision.buffer,
        "held_back": decision.held_back,
        "bound_by": list(decision.bound_by),
        "sites": rows,
    }


def render_group_explanation(data: dict[str, Any]) -> str:
    req = data["request"]
    lines = [
        f"Job group {data['group']} (owner {data['owner'] or '-'}): {data['idle_jobs']} idle job(s), "
        f"{req['cpus']} cpu(s), {req['memory_mb']} MB, {req['disk_mb']} MB disk, {req['gpus']} GPU(s)",
        f"  Requirements: {data['requirements']}",
        f"  Decision: {data['decision']}",
    ]
    if data.get("runtime"):
        lines.append(f"  Runtime: {data['runtime']}")
    if data["held_back"]:
        lines.append(f"  Held back: {data['held_back']} job(s), by {', '.join(data['bound_by'])}")
    lines.append("  Sites:")
    for r in data["sites"]:
        lines.append(f"    {r['site']}: match {r['match']}")
        for f in r["failed"]:
            value = f" -> {f['value']}" if f["value"] else ""
            lines.append(f"      false: [{f['side']}] {f['clause']}{value}")
        if r["match"] == "yes":
            lines.append(f"      capacity: {r['capacity']}")
            if r.get("start"):
                lines.append(f"      start: {r['start']}")
            lines.append(
                f"      planned: {r['jobs']} job(s), {r['into_existing']} into existing pilots, "
                f"{r['new_pilots']} new pilot(s)" + (f" of type {r['instance_type']}" if r.get("instance_type") else "")
            )
            if r["limit"]:
                lines.append(f"      limit that held this group back: {r['limit']}")
            elif r["site_bound_by"]:
                lines.append(f"      site limit reached (by other groups): {r['site_bound_by']}")
    return "\n".join(printable(line) for line in lines)  # one field never makes two lines


def explain_group(plan: Plan, group: JobGroup, sites: Sequence[SiteSpec], cache: MatchCache | None = None) -> str:
    """Text explanation of one group (see :func:`group_explanation`)."""
    return render_group_explanation(group_explanation(plan, group, sites, cache))
