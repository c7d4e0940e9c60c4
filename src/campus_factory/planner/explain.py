"""Human-readable text of a plan: what each site gets, and where each job group goes."""

from __future__ import annotations

from .types import Plan

__all__ = ["explain_plan"]


def explain_plan(plan: Plan) -> str:
    lines = ["Sites:"]
    for sp in plan.sites:
        action = f"submit {sp.submit}, cancel {len(sp.cancel)}"
        lines.append(f"  {sp.site}: {action}")
        lines.extend(f"    - {r}" for r in sp.reasons)
        lines.extend(f"    - cancel {c.pilot_id}: {c.reason}" for c in sp.cancel)
    lines.append("Job groups:")
    if not plan.groups:
        lines.append("  (no idle jobs)")
    for g in plan.groups:
        where = g.site or "nowhere"
        lines.append(f"  {g.group_id} -> {where}: {g.reason}")
    if plan.notes:
        lines.append("Notes:")
        lines.extend(f"  - {n}" for n in plan.notes)
    return "\n".join(lines)
