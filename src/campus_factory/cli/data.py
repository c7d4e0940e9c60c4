"""What the commands return: plain data, rendered elsewhere."""

from __future__ import annotations

import time
from typing import Any

from ..config import Config
from ..ledger import LIVE, Ledger, PilotRecord, PilotState
from ..loop.factory import CycleReport

__all__ = ["factory_status", "pilot_rows", "report_data", "site_rows"]


def _ago(t: float | None, now: float) -> str | None:
    if t is None:
        return None
    s = max(0, int(now - t))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def site_rows(config: Config, ledger: Ledger | None) -> list[dict[str, Any]]:
    counts = ledger.counts(config.factory.name) if ledger else {}
    rows = []
    for s in config.sites:
        live = {st.value: counts.get((s.name, st), 0) for st in PilotState if st in LIVE}
        rows.append(
            {
                "site": s.name,
                "provider": s.provider,
                "enabled": s.enabled,
                "slot": f"{s.slot.cpus}c/{s.slot.memory_mb}MB/{s.slot.gpus}g",
                "max_pilots": s.limits.max_pilots,
                "max_queued": s.limits.max_queued,
                "alive": sum(live.values()),
                "queued": live["requested"] + live["queued"],
                "running": live["running"] + live["joined"],
            }
        )
    return rows


def pilot_rows(pilots: list[PilotRecord], now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    return [
        {
            "pilot": p.pilot_id,
            "site": p.site,
            "state": p.state.value,
            "job": p.job_id,
            "since": _ago(p.state_since, now),
            "cpus": p.cpus,
            "memory_mb": p.memory_mb,
            "exit": p.exit_code,
            "reason": p.reason[:80],
        }
        for p in pilots
    ]


def factory_status(config: Config, ledger: Ledger) -> dict[str, Any]:
    name = config.factory.name
    last = ledger.last_cycle(name)
    counts = ledger.counts(name)
    by_state: dict[str, int] = {}
    for (_site, st), n in counts.items():
        by_state[st.value] = by_state.get(st.value, 0) + n
    return {
        "factory": name,
        "ledger": config.factory.ledger_url,
        "sites": len(config.sites),
        "pilots_by_state": dict(sorted(by_state.items())),
        "last_cycle": None
        if last is None
        else {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last.started_at)),
            "duration_s": round(last.duration_s, 3),
            "submitted": last.submitted,
            "cancelled": last.cancelled,
            "errors": last.errors,
        },
    }


def report_data(report: CycleReport) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "standby": report.standby,
        "submitted": report.submitted,
        "cancelled": report.cancelled,
        "adopted": report.adopted,
        "orphans_cancelled": report.orphans_cancelled,
        "errors": report.errors,
        "duration_s": round(report.duration_s, 3),
        "plan": report.plan.to_dict() if report.plan else None,
    }
