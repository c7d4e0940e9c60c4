"""Job runs on pilots: which job ran on which pilot, when, and in which job group.

The loop's job tracker (:mod:`campus_factory.loop.usage`) records them (:func:`record_pilot_jobs`);
accounting (:mod:`.accounting`) counts the core-hours they used, and the loop learns each job
group's runtime from the ended ones (:mod:`.runtimes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, PilotRow
from .store import Ledger

__all__ = ["JobRun", "PilotJobRow", "open_job_runs", "pilot_jobs", "record_pilot_jobs", "recorded_runs"]


class PilotJobRow(Base):
    """One execution of a job on a pilot (table created by migration 0003)."""

    __tablename__ = "pilot_jobs"
    __table_args__ = (
        UniqueConstraint("pilot_id", "job_id", "started_at", name="uq_pilot_jobs_run"),
        Index("ix_pilot_jobs_group_ended", "job_group", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pilot_id: Mapped[str] = mapped_column(ForeignKey("pilots.pilot_id"), index=True)
    job_id: Mapped[str] = mapped_column(String(256))
    owner: Mapped[str] = mapped_column(String(128))
    route: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[float] = mapped_column(Float, index=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    cpus: Mapped[int] = mapped_column(Integer)
    #: the job group (``JobGroup.group_id``) the job was idle in, when the loop saw it (migration 0006)
    job_group: Mapped[str | None] = mapped_column(String(64), nullable=True)


@dataclass(frozen=True)
class JobRun:
    """A job that ran (or runs: ``ended_at`` None) on a pilot; ``job_id`` e.g. a GlobalJobId;
    ``job_group``: the job group it was idle in, when known (runtimes are learned per group)."""

    pilot_id: str
    job_id: str
    owner: str
    route: str
    started_at: float
    ended_at: float | None
    cpus: int
    job_group: str | None = None


_RUNS = cast(Table, PilotJobRow.__table__)
_RUNS_OF = select(
    _RUNS.c.id, _RUNS.c.pilot_id, _RUNS.c.job_id, _RUNS.c.started_at, _RUNS.c.ended_at, _RUNS.c.job_group
).where(
    _RUNS.c.pilot_id.in_(bindparam("pilots", expanding=True)), _RUNS.c.job_id.in_(bindparam("jobs", expanding=True))
)
_END_RUN = update(_RUNS).where(_RUNS.c.id == bindparam("b_id"))


def record_pilot_jobs(ledger: Ledger, runs: Iterable[JobRun], *, ended_groups: set[str] | None = None) -> int:
    """Insert job runs, or set the end of runs already recorded; returns how many rows changed.

    ``ended_groups``, when given, receives the job group of every row written with an end (what
    :func:`campus_factory.ledger.runtimes.recent_group_runs` reads has changed for those groups).
    The runs already recorded are read in one query per 400 runs, not one per run; the new runs
    are inserted and the ended ones updated with one statement each (Core, not the ORM)."""
    runs = list(runs)
    changed = 0
    with ledger.engine.begin() as conn:
        rows: dict[tuple[str, str, float], Any] = {}
        for i in range(0, len(runs), 400):  # at most 800 bound parameters a query
            chunk = runs[i : i + 400]
            pilots, jobs = sorted({r.pilot_id for r in chunk}), sorted({r.job_id for r in chunk})
            found = conn.execute(_RUNS_OF, {"pilots": pilots, "jobs": jobs})
            rows.update(((r.pilot_id, r.job_id, r.started_at), r) for r in found)
        fresh: dict[tuple[str, str, float], dict[str, Any]] = {}
        ends: dict[int, dict[str, Any]] = {}
        for run in runs:
            key = (run.pilot_id, run.job_id, run.started_at)
            row = rows.get(key)
            if row is None:
                if key not in fresh:
                    changed += 1
                values = fresh.setdefault(key, dict(vars(run)))  # flat fields: no deep copy
                if run.ended_at is not None:
                    values["ended_at"] = run.ended_at
                continue
            end = ends.get(row.id)
            ended_at = row.ended_at if end is None else end["ended_at"]
            if ended_at != run.ended_at and run.ended_at is not None:
                group = (row.job_group if end is None else end["job_group"]) or run.job_group
                ends[row.id] = {"b_id": row.id, "ended_at": run.ended_at, "job_group": group}
                changed += 1
        if fresh:
            conn.execute(insert(_RUNS), list(fresh.values()))
        if ends:
            conn.execute(_END_RUN, list(ends.values()))
    if ended_groups is not None:
        written = [*(v for v in fresh.values() if v["ended_at"] is not None), *ends.values()]
        ended_groups.update(g for v in written if (g := v["job_group"]) is not None)
    return changed


def _run(r: PilotJobRow) -> JobRun:
    return JobRun(r.pilot_id, r.job_id, r.owner, r.route, r.started_at, r.ended_at, r.cpus, r.job_group)


def open_job_runs(ledger: Ledger, factory: str) -> list[JobRun]:
    """Runs without an end, on this factory's pilots."""
    q = (
        select(PilotJobRow)
        .join(PilotRow, PilotRow.pilot_id == PilotJobRow.pilot_id)
        .where(PilotRow.factory == factory, PilotJobRow.ended_at.is_(None))
    )
    with Session(ledger.engine) as s:
        return [_run(r) for r in s.scalars(q)]


def recorded_runs(ledger: Ledger, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (pilot id, job id) pairs have a run recorded (one query per 500 pilots)."""
    wanted = set(pairs)
    pilots = sorted({p for p, _ in wanted})
    out: set[tuple[str, str]] = set()
    with Session(ledger.engine) as s:
        for i in range(0, len(pilots), 500):
            q = select(PilotJobRow.pilot_id, PilotJobRow.job_id).where(PilotJobRow.pilot_id.in_(pilots[i : i + 500]))
            out.update((p, j) for p, j in s.execute(q) if (p, j) in wanted)
    return out


def pilot_jobs(ledger: Ledger, pilot_id: str) -> list[JobRun]:
    q = select(PilotJobRow).where(PilotJobRow.pilot_id == pilot_id).order_by(PilotJobRow.started_at)
    with Session(ledger.engine) as s:
        return [_run(r) for r in s.scalars(q)]
