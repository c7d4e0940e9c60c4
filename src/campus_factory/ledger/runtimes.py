"""Recent runs of each job group, from which the loop learns the group's runtime.

One bounded query: runs on this factory's pilots that ended in the window and carry a job group
(``pilot_jobs.job_group``, migration 0006), the ``last`` most recently ended of each group, at
most ``limit`` rows in all; of some groups only, when ``groups`` names them (one query per 500
groups, each bounded by ``limit``). The median and the rules about bad durations are the
planner's (:func:`campus_factory.planner.runtime.median_runtimes`); this module only reads.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .jobruns import PilotJobRow
from .models import PilotRow
from .store import Ledger

__all__ = ["recent_group_runs"]


def recent_group_runs(
    ledger: Ledger,
    factory: str,
    *,
    since: float,
    last: int = 20,
    limit: int = 20_000,
    groups: Collection[str] | None = None,
) -> list[tuple[str, float, float]]:
    """(job group, started_at, ended_at) of runs ended at or after ``since``, newest first (of
    each chunk of ``groups``, when given)."""
    if groups is None:
        return _read(ledger, factory, since, last, limit, None)
    names = sorted(set(groups))
    return [
        r for i in range(0, len(names), 500) for r in _read(ledger, factory, since, last, limit, names[i : i + 500])
    ]


def _read(
    ledger: Ledger, factory: str, since: float, last: int, limit: int, groups: list[str] | None
) -> list[tuple[str, float, float]]:
    rank = (
        func.row_number()
        .over(partition_by=PilotJobRow.job_group, order_by=(PilotJobRow.ended_at.desc(), PilotJobRow.id.desc()))
        .label("rank")
    )
    inner = (
        select(PilotJobRow.job_group, PilotJobRow.started_at, PilotJobRow.ended_at, rank)
        .join(PilotRow, PilotRow.pilot_id == PilotJobRow.pilot_id)
        .where(
            PilotRow.factory == factory,
            PilotJobRow.job_group.is_not(None) if groups is None else PilotJobRow.job_group.in_(groups),
            PilotJobRow.ended_at.is_not(None),
            PilotJobRow.ended_at >= since,
        )
        .subquery()
    )
    q = (
        select(inner.c.job_group, inner.c.started_at, inner.c.ended_at)
        .where(inner.c.rank <= max(1, last))
        .order_by(inner.c.ended_at.desc())
        .limit(max(1, limit))
    )
    with Session(ledger.engine) as s:
        return [(str(g), float(a), float(b)) for g, a, b in s.execute(q)]
