"""Which pilots a plan cancels: beyond the ceiling, queued ones nothing needs, idle ones past
their timeout (counted from their last job's end)."""

from __future__ import annotations

from .state import SiteState, weight
from .types import QUEUED_STATES, Cancel, PilotView
from .warm import IDLE_GRACE_S, JOIN_SETTLE_S

__all__ = ["cancels", "idle_since"]


def idle_since(p: PilotView) -> float:
    """Since when a pilot has had no job: its last job's end when known, else its state change."""
    return p.since if p.idle_since is None else max(p.since, p.idle_since)


def cancels(st: SiteState, submit: int, now: float) -> list[Cancel]:
    spec = st.spec
    used = st.bins.used_pilots()
    active = [p for p in st.pilots if p.state != "retiring"]
    floor = spec.floor if spec.enabled else 0
    keep_floor = max(0, len(active) + submit - floor)
    cap = spec.max_pilots if spec.ceiling is None else min(spec.max_pilots, spec.ceiling)
    unit = max(spec.cpus, 1) if spec.sizing == "fit" else 1
    excess = sum(weight(spec, p) for p in active) - cap * unit  # in pilots, or cores at a fit site
    what = f"{cap} pilot(s)" if unit == 1 else f"{cap} slot(s) of {unit} core(s)"
    cancels: list[Cancel] = []
    chosen: set[str] = set()
    queued = sorted(
        (p for p in active if p.state in QUEUED_STATES and p.has_job_id and p.busy is not True),
        key=lambda p: (-p.since, p.pilot_id),
    )
    idle = sorted(
        (p for p in active if p.state in ("running", "joined") and p.busy is not True),
        key=lambda p: (idle_since(p), p.pilot_id),
    )
    for group, graceful in ((queued, False), (idle, True)):  # beyond the ceiling, used or not
        for p in group:
            if excess <= 0:
                break
            cancels.append(Cancel(p.pilot_id, graceful, f"above the ceiling of {what}"))
            chosen.add(p.pilot_id)
            excess -= weight(spec, p)
    room = keep_floor - len(cancels)
    # a fit pilot no job of this plan needs (idle jobs, warm buffer) leaves after a short grace:
    # it was sized for jobs that are gone, and a new one starts when such jobs come
    timeout, what = spec.idle_timeout_s, "idle_timeout"
    if spec.sizing == "fit" and not spec.instance_types and timeout > IDLE_GRACE_S:
        timeout, what = IDLE_GRACE_S, f"{IDLE_GRACE_S:.0f} s (sized to demand, and no idle job needs it)"
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
        idle_for = now - idle_since(p)
        if p.pilot_id in used or p.pilot_id in chosen or idle_for < timeout:
            continue
        if p.idle_since is None and now - p.since < JOIN_SETTLE_S:  # its first job may not show yet
            continue
        cancels.append(Cancel(p.pilot_id, True, f"idle for {idle_for:.0f} s >= {what}"))
        room -= 1
    return cancels
