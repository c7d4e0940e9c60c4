"""What the API returns: plain JSON-friendly data built from the config and the ledger.

Everything is read from the ledger (pilots, transitions, cycles with their last plan, operator
controls and scale overrides),
so the API can run in the factory process or beside it (``campus-factory api serve``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import Config, SiteConfig
from ..ledger import LIVE, Ledger, PilotRecord, PilotState
from ..ledger.accounting import account, state_history
from ..ledger.controls import OperatorRequest, SiteControl, requests, site_controls
from ..ledger.models import CycleRow
from ..ledger.overrides import SiteOverride, get_overrides
from ..planner.inputs import site_health_of

__all__ = [
    "costs_of",
    "cycles_view",
    "dashboard_view",
    "demand_view",
    "pilot_view",
    "plan_view",
    "request_view",
    "site_view",
    "sites_view",
]

_LIVE_ORDER = [st.value for st in PilotState if st in LIVE]


def costs_of(config: Config) -> dict[str, float]:
    return {s.name: s.cost_per_core_hour for s in config.sites}


def pilot_view(p: PilotRecord) -> dict[str, Any]:
    return {
        "pilot_id": p.pilot_id,
        "site": p.site,
        "state": p.state.value,
        "job_id": p.job_id,
        "cpus": p.cpus,
        "memory_mb": p.memory_mb,
        "gpus": p.gpus,
        "created_at": p.created_at,
        "state_since": p.state_since,
        "started_at": p.started_at,
        "joined_at": p.joined_at,
        "ended_at": p.ended_at,
        "exit_code": p.exit_code,
        "reason": p.reason,
    }


def request_view(r: OperatorRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "target": r.target,
        "reason": r.reason,
        "created_at": r.created_at,
        "created_by": r.created_by,
        "done_at": r.done_at,
        "result": r.result,
        "pending": r.done_at is None,
    }


def _last_plan(config: Config, ledger: Ledger) -> tuple[dict[str, Any], float | None]:
    last = ledger.last_cycle(config.factory.name)
    return (last.plan, last.started_at) if last is not None else ({}, None)


def _status(site: SiteConfig, control: SiteControl | None, health: dict[str, Any]) -> str:
    if not site.enabled:
        return "disabled"
    if control is not None and control.draining:
        return "draining"
    if control is not None and control.paused:
        return "paused"
    if health["black_hole"]:
        return "black hole"
    return str(health["state"])


def site_view(
    config: Config,
    ledger: Ledger,
    site: SiteConfig,
    now: float,
    *,
    counts: dict[tuple[str, PilotState], int] | None = None,
    controls: dict[str, SiteControl] | None = None,
    scales: dict[str, SiteOverride] | None = None,
    plan: dict[str, Any] | None = None,
) -> dict[str, Any]:
    name = config.factory.name
    counts = ledger.counts(name) if counts is None else counts
    controls = site_controls(ledger, name) if controls is None else controls
    scales = get_overrides(ledger, name) if scales is None else scales
    plan = _last_plan(config, ledger)[0] if plan is None else plan
    history = ledger.pilots(factory=name, site=site.name, limit=50)
    h = site_health_of(site, history, now, joins_observed=config.joins_pool(site))
    health = {
        "state": h.state,
        "consecutive_failures": h.consecutive_failures,
        "backoff_until": h.backoff_until,
        "black_hole": h.black_hole,
        "start_latency_s": h.start_latency_s,
        "reasons": list(h.reasons),
    }
    by_state = {st.value: counts.get((site.name, st), 0) for st in PilotState}
    ov = controls.get(site.name)
    scale = scales.get(site.name)
    sp = next((x for x in plan.get("sites", ()) if x.get("site") == site.name), None)
    return {
        "name": site.name,
        "provider": site.provider,
        "enabled": site.enabled,
        "status": _status(site, ov, health),
        "paused": bool(ov and ov.paused),
        "draining": bool(ov and ov.draining),
        "control": None
        if ov is None
        else {"reason": ov.reason, "updated_at": ov.updated_at, "updated_by": ov.updated_by},
        "scale": None
        if scale is None
        else {"floor": scale.floor, "ceiling": scale.ceiling, "note": scale.note, "updated_at": scale.updated_at},
        "health": health,
        "pilots": by_state,
        "live": sum(by_state[s] for s in _LIVE_ORDER),
        "slot": {"cpus": site.slot.cpus, "memory_mb": site.slot.memory_mb, "gpus": site.slot.gpus},
        "limits": {
            "max_pilots": site.limits.max_pilots,
            "max_queued": site.limits.max_queued,
            "floor": site.limits.floor,
            "ceiling": site.limits.ceiling,
        },
        "cost_per_core_hour": site.cost_per_core_hour,
        "plan": None
        if sp is None
        else {
            "submit": sp.get("submit", 0),
            "cancel": len(sp.get("cancel") or ()),
            "needed": sp.get("needed", 0),
            "supply": sp.get("supply", 0),
            "bound_by": sp.get("bound_by"),
            "reasons": list(sp.get("reasons") or ()),
            "health": sp.get("health", "ok"),
        },
    }


def sites_view(config: Config, ledger: Ledger, now: float) -> list[dict[str, Any]]:
    name = config.factory.name
    counts, controls, scales = ledger.counts(name), site_controls(ledger, name), get_overrides(ledger, name)
    plan = _last_plan(config, ledger)[0]
    return [
        site_view(config, ledger, s, now, counts=counts, controls=controls, scales=scales, plan=plan)
        for s in config.sites
    ]


def demand_view(config: Config, ledger: Ledger) -> dict[str, Any]:
    """Idle job groups as the last cycle saw them, and where each went."""
    plan, at = _last_plan(config, ledger)
    groups = [
        {
            "group_id": g.get("group_id"),
            "idle_jobs": g.get("idle_jobs", 0),
            "site": g.get("site"),
            "pilots": g.get("pilots", 0),
            "held_back": g.get("held_back", 0),
            "reason": g.get("reason", ""),
        }
        for g in plan.get("groups", ())
    ]
    return {"as_of": at, "idle_jobs": sum(g["idle_jobs"] for g in groups), "groups": groups}


def plan_view(config: Config, ledger: Ledger) -> dict[str, Any]:
    """The last plan with its reasons, and a rendered explanation."""
    from ..planner.explain import explain_plan
    from ..planner.types import Cancel, GroupDecision, Placement, Plan, SitePlan

    last = ledger.last_cycle(config.factory.name)
    if last is None:
        return {"as_of": None, "plan": None, "explanation": "no cycle has run yet"}
    raw = last.plan
    try:
        plan = Plan(
            now=raw["now"],
            sites=tuple(
                SitePlan(**{**sp, "cancel": tuple(Cancel(**c) for c in sp["cancel"]), "reasons": tuple(sp["reasons"])})
                for sp in raw["sites"]
            ),
            groups=tuple(
                GroupDecision(
                    **{
                        **g,
                        "matched": tuple(g.get("matched", ())),
                        "placements": tuple(Placement(**p) for p in g.get("placements", ())),
                        "bound_by": tuple(g.get("bound_by", ())),
                    }
                )
                for g in raw["groups"]
            ),
            notes=tuple(raw.get("notes", ())),
        )
        text = explain_plan(plan)
    except (KeyError, TypeError):  # a plan written by another version
        text = "(this plan was written by another version; see the JSON)"
    return {
        "as_of": last.started_at,
        "duration_s": last.duration_s,
        "submitted": last.submitted,
        "cancelled": last.cancelled,
        "errors": last.errors,
        "plan": raw,
        "explanation": text,
    }


def cycles_view(config: Config, ledger: Ledger, limit: int = 10) -> list[dict[str, Any]]:
    q = select(CycleRow).where(CycleRow.factory == config.factory.name).order_by(CycleRow.id.desc()).limit(limit)
    with Session(ledger.engine) as s:
        return [
            {
                "started_at": r.started_at,
                "duration_s": r.duration_s,
                "submitted": r.submitted,
                "cancelled": r.cancelled,
                "errors": r.errors,
            }
            for r in s.scalars(q)
        ]


def dashboard_view(config: Config, ledger: Ledger, now: float) -> dict[str, Any]:
    """Everything the dashboard shows, in one document."""
    name = config.factory.name
    window = config.api.history_window
    sites = sites_view(config, ledger, now)
    demand = demand_view(config, ledger)
    acc = account(ledger, since=now - window, until=now, costs=costs_of(config), factory=name, now=now)
    plan, at = _last_plan(config, ledger)
    decisions = [
        {"kind": "site", "subject": sp.get("site"), "text": r}
        for sp in plan.get("sites", ())
        for r in (sp.get("reasons") or ())
    ] + [
        {"kind": "group", "subject": g["group_id"], "text": f"-> {g['site'] or 'nowhere'}: {g['reason']}"}
        for g in demand["groups"]
    ]
    return {
        "factory": name,
        "now": now,
        "window_s": window,
        "last_cycle_at": at,
        "sites": sites,
        "totals": {
            "live": sum(s["live"] for s in sites),
            "running": sum(s["pilots"]["running"] + s["pilots"]["joined"] for s in sites),
            "queued": sum(s["pilots"]["requested"] + s["pilots"]["queued"] for s in sites),
            "idle_jobs": demand["idle_jobs"],
        },
        "supply": [
            {
                "site": s["name"],
                "needed": (s["plan"] or {}).get("needed", 0),
                "supply": (s["plan"] or {}).get("supply", 0),
                "running": s["pilots"]["running"] + s["pilots"]["joined"],
            }
            for s in sites
        ],
        "history": state_history(ledger, since=now - window, until=now, points=49, factory=name),
        "accounting": acc.as_dict(),
        "demand": demand,
        "decisions": decisions,
        "cycles": cycles_view(config, ledger),
        "requests": [request_view(r) for r in requests(ledger, name, limit=20)],
    }
