"""Accounting: core-hours delivered, used and wasted; pilots requested, started and failed; spend.

Over a window ``[since, until)``; every interval is clipped to it, and intervals still open end at
``min(until, now)``.

* **delivered**: a pilot's cores x the time it was running (``running``, ``joined``, or
  ``retiring`` after running), from the transitions table, so a pilot requeued by its site stops
  counting while it waits again.
* **used**: a job's cores x its run time on a pilot, from ``pilot_jobs`` (filled by the pool
  integration; :func:`.jobruns.record_pilot_jobs`, re-exported here). **wasted** = delivered - used.
* **spend**: delivered core-hours x the site's cost per core-hour (passed in, from the config).
* pilots **requested** (created in the window), **started** (first ran in the window), **failed**
  (ended ``failed`` or ``lost`` in the window).

**job runs**: how many job executions on pilots overlap the window (a job flocked in from a
campus schedd counts like any other: ``by="schedd"`` shows which schedd each run came from,
read from its GlobalJobId).

Grouping ``by="site"`` is direct. ``by="owner"``, ``"route"`` or ``"schedd"``: a pilot serves several owners,
so its delivered core-hours and spend are shared among the groups in proportion to the core-hours
their jobs used on it; a pilot that ran no job in the window goes to the group ``(no jobs)``. Pilot
counts then count each pilot under every group it served (the total row counts each pilot once).
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from .jobruns import JobRun, PilotJobRow, open_job_runs, pilot_jobs, record_pilot_jobs, recorded_runs
from .models import PilotRow, TransitionRow
from .states import LIVE, PilotState
from .store import Ledger

__all__ = [
    "NO_JOBS",
    "Accounting",
    "AccountingRow",
    "GroupBy",
    "JobRun",
    "PilotJobRow",
    "account",
    "job_schedd",
    "open_job_runs",
    "pilot_jobs",
    "record_pilot_jobs",
    "recorded_runs",
    "state_history",
]

GroupBy = Literal["site", "owner", "route", "schedd"]
GROUP_BY: tuple[GroupBy, ...] = ("site", "owner", "route", "schedd")
NO_JOBS = "(no jobs)"
_RUNNING = frozenset({PilotState.RUNNING.value, PilotState.JOINED.value})
_FAILED = frozenset({PilotState.FAILED.value, PilotState.LOST.value})


@dataclass(frozen=True)
class AccountingRow:
    group: str
    delivered_core_hours: float
    used_core_hours: float
    wasted_core_hours: float
    waste_pct: float | None
    pilots_requested: int
    pilots_started: int
    pilots_failed: int
    spend: float
    job_runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Accounting:
    since: float
    until: float
    by: GroupBy
    rows: tuple[AccountingRow, ...]
    total: AccountingRow

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "by": self.by,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
        }


def _overlap(start: float, end: float, lo: float, hi: float) -> float:
    return max(0.0, min(end, hi) - max(start, lo))


def _running_seconds(states: Sequence[tuple[float, str]], lo: float, hi: float) -> float:
    """Seconds within [lo, hi) the pilot was running, from its (at, to_state) transitions."""
    total, began = 0.0, None
    for at, state in states:
        running = state in _RUNNING or (state == PilotState.RETIRING.value and began is not None)
        if running and began is None:
            began = at
        elif not running and began is not None:
            total += _overlap(began, at, lo, hi)
            began = None
    if began is not None:
        total += _overlap(began, hi, lo, hi)
    return total


@dataclass
class _Acc:
    delivered: float = 0.0
    used: float = 0.0
    spend: float = 0.0
    requested: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    runs: int = 0

    def add(
        self, p: PilotRow, delivered: float, spend: float, used: float, since: float, until: float, runs: int = 0
    ) -> None:
        self.delivered += delivered
        self.spend += spend
        self.used += used
        self.runs += runs
        if since <= p.created_at < until:
            self.requested.add(p.pilot_id)
        if p.started_at is not None and since <= p.started_at < until:
            self.started.add(p.pilot_id)
        if p.state in _FAILED and p.ended_at is not None and since <= p.ended_at < until:
            self.failed.add(p.pilot_id)

    def row(self, group: str) -> AccountingRow:
        delivered, used = self.delivered / 3600.0, self.used / 3600.0
        wasted = delivered - used
        return AccountingRow(
            group=group,
            delivered_core_hours=delivered,
            used_core_hours=used,
            wasted_core_hours=wasted,
            waste_pct=100.0 * wasted / delivered if delivered > 0 else None,
            pilots_requested=len(self.requested),
            pilots_started=len(self.started),
            pilots_failed=len(self.failed),
            spend=self.spend / 3600.0,
            job_runs=self.runs,
        )


def job_schedd(job_id: str) -> str:
    """The schedd a job run came from: the first field of its GlobalJobId (``schedd#cluster.proc#qdate``)."""
    schedd, sep, _ = job_id.partition("#")
    return schedd if sep and schedd else "(unknown)"


def _group_key(by: GroupBy, site: str, job: PilotJobRow) -> str:
    if by == "site":
        return site
    if by == "owner":
        return job.owner
    if by == "route":
        return job.route
    return job_schedd(job.job_id)


def _pilot_filter(factory: str | None, since: float, until: float) -> Any:
    cond = and_(PilotRow.created_at < until, or_(PilotRow.ended_at.is_(None), PilotRow.ended_at >= since))
    return and_(cond, PilotRow.factory == factory) if factory is not None else cond


def account(
    ledger: Ledger,
    *,
    since: float,
    until: float,
    by: GroupBy = "site",
    costs: Mapping[str, float] | None = None,
    factory: str | None = None,
    now: float | None = None,
) -> Accounting:
    """The accounting of ``[since, until)``, grouped ``by`` site, owner or route.

    ``costs``: cost per core-hour by site (``SiteConfig.cost_per_core_hour``); missing sites cost 0.
    """
    if by not in GROUP_BY:
        raise ValueError(f"cannot group by {by!r}: use site, owner, route or schedd")
    if until <= since:
        raise ValueError("the window is empty: until must be after since")
    now = time.time() if now is None else now
    hi = min(until, now)
    costs = costs or {}
    where = _pilot_filter(factory, since, until)
    with Session(ledger.engine) as s:
        pilots = list(s.scalars(select(PilotRow).where(where)))
        states: dict[str, list[tuple[float, str]]] = defaultdict(list)
        tq = (
            select(TransitionRow.pilot_id, TransitionRow.at, TransitionRow.to_state)
            .join(PilotRow, PilotRow.pilot_id == TransitionRow.pilot_id)
            .where(where, PilotRow.started_at.is_not(None))
            .order_by(TransitionRow.id)
        )
        for pid, at, to_state in s.execute(tq):
            states[pid].append((at, to_state))
        jq = (
            select(PilotJobRow)
            .join(PilotRow, PilotRow.pilot_id == PilotJobRow.pilot_id)
            .where(where, PilotJobRow.started_at < until)
            .where(or_(PilotJobRow.ended_at.is_(None), PilotJobRow.ended_at > since))
        )
        jobs: dict[str, list[PilotJobRow]] = defaultdict(list)
        for job in s.scalars(jq):
            jobs[job.pilot_id].append(job)
    groups: dict[str, _Acc] = defaultdict(_Acc)
    total = _Acc()
    for p in pilots:
        delivered = p.cpus * _running_seconds(states.get(p.pilot_id, ()), since, hi)
        spend = delivered * costs.get(p.site, 0.0)
        used_by: dict[str, float] = defaultdict(float)
        runs_by: dict[str, int] = defaultdict(int)
        for job in jobs.get(p.pilot_id, ()):
            end = job.ended_at if job.ended_at is not None else hi
            if p.ended_at is not None:  # nothing runs on a pilot after it ended
                end = min(end, p.ended_at)
            key = _group_key(by, p.site, job)
            used_by[key] += job.cpus * _overlap(job.started_at, end, since, hi)
            if job.started_at < hi and end > since:  # not a run that has not begun by now
                runs_by[key] += 1
        used = sum(used_by.values())
        if by == "site":
            shares = {p.site: 1.0}
        elif used > 0:
            shares = {k: u / used for k, u in used_by.items()}
        else:
            shares = {NO_JOBS: 1.0}
        total.add(p, delivered, spend, used, since, until, sum(runs_by.values()))
        for key, share in shares.items():
            groups[key].add(
                p, delivered * share, spend * share, used_by.get(key, 0.0), since, until, runs_by.get(key, 0)
            )
        for key in runs_by.keys() - shares.keys():  # runs that used no time in the window (zero length)
            groups[key].runs += runs_by[key]
    rows = tuple(groups[k].row(k) for k in sorted(groups))
    return Accounting(since, until, by, rows, total.row("total"))


def state_history(
    ledger: Ledger,
    *,
    since: float,
    until: float,
    points: int = 60,
    factory: str | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """Pilots in each live state at ``points`` evenly spaced times in ``[since, until]``.

    Returns ``{"times": [...], "states": {state: [count per time]}}``, from the transitions table.
    """
    if until <= since or points < 2:
        raise ValueError("need until > since and at least 2 points")
    step = (until - since) / (points - 1)
    times = [since + i * step for i in range(points)]
    where = and_(
        PilotRow.created_at <= until,
        or_(PilotRow.ended_at.is_(None), PilotRow.ended_at >= since),
    )
    if factory is not None:
        where = and_(where, PilotRow.factory == factory)
    if site is not None:
        where = and_(where, PilotRow.site == site)
    q = (
        select(TransitionRow.pilot_id, TransitionRow.at, TransitionRow.to_state)
        .join(PilotRow, PilotRow.pilot_id == TransitionRow.pilot_id)
        .where(where)
        .order_by(TransitionRow.id)
    )
    timelines: dict[str, list[tuple[float, str]]] = defaultdict(list)
    with Session(ledger.engine) as s:
        for pid, at, to_state in s.execute(q):
            timelines[pid].append((at, to_state))
    live = [st.value for st in PilotState if st in LIVE]
    counts = {st: [0] * points for st in live}
    for timeline in timelines.values():
        ats = [at for at, _ in timeline]
        for i, t in enumerate(times):
            k = bisect.bisect_right(ats, t)
            if k and timeline[k - 1][1] in counts:
                counts[timeline[k - 1][1]][i] += 1
    return {"times": times, "states": counts}
