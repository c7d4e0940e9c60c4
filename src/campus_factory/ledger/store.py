"""The ledger: every pilot the factory requested, and every state it went through.

Callers get frozen :class:`PilotRecord` values, never ORM objects. Each transition updates the
pilot and appends its history row in the same transaction, so the two never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, Table, bindparam, create_engine, event, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ..domain import PilotRequest
from ..errors import LedgerError
from ..logs import redact
from .models import CycleRow, PilotRow, TransitionRow
from .states import LIVE, PilotEvent, PilotState, next_state

__all__ = ["CycleRecord", "Ledger", "PilotRecord", "TransitionRecord", "Update"]


@dataclass(frozen=True)
class PilotRecord:
    pilot_id: str
    factory: str
    site: str
    submission_id: str
    array_index: int | None
    job_id: str | None
    state: PilotState
    cpus: int
    memory_mb: int
    disk_mb: int
    gpus: int
    walltime_s: float
    created_at: float
    state_since: float
    started_at: float | None
    joined_at: float | None
    ended_at: float | None
    exit_code: int | None
    reason: str

    @classmethod
    def of(cls, row: PilotRow) -> PilotRecord:
        return cls(
            **{k: getattr(row, k) for k in cls.__dataclass_fields__ if k != "state"},
            state=PilotState(row.state),
        )


@dataclass(frozen=True)
class TransitionRecord:
    pilot_id: str
    at: float
    from_state: PilotState | None
    to_state: PilotState
    event: str
    detail: str


@dataclass(frozen=True)
class CycleRecord:
    factory: str
    started_at: float
    duration_s: float
    dry_run: bool
    submitted: int
    cancelled: int
    errors: int
    plan: dict[str, Any]


@dataclass(frozen=True)
class Update:
    """One event to apply to one pilot."""

    pilot_id: str
    event: PilotEvent
    detail: str = ""
    job_id: str | None = None
    exit_code: int | None = None
    #: when it happened, when the site or the pool says so (None: now); kept within the pilot's
    #: last transition and now, so that history never runs backwards
    at: float | None = None


_PILOTS = cast(Table, PilotRow.__table__)
_TRANSITIONS = cast(Table, TransitionRow.__table__)
#: the columns a transition may change
_MUTABLE = ("job_id", "state", "state_since", "started_at", "joined_at", "ended_at", "exit_code", "reason")
# the loop's statements, built once (Core on a connection, not the ORM: several run every cycle)
_BY_IDS = select(_PILOTS).where(_PILOTS.c.pilot_id.in_(bindparam("ids", expanding=True)))
_SET_BY_ID = update(_PILOTS).where(_PILOTS.c.pilot_id == bindparam("b_pilot_id"))
_KNOWN_IDS = select(_PILOTS.c.pilot_id).where(
    _PILOTS.c.factory == bindparam("factory"), _PILOTS.c.pilot_id.in_(bindparam("ids", expanding=True))
)


def _record(m: Mapping[Any, Any]) -> PilotRecord:
    return PilotRecord(**{**m, "state": PilotState(m["state"])})


def _transition(
    row: dict[str, Any], new: PilotState, old: PilotState, up: Update, now: float, detail: str, new_job: bool
) -> None:
    """Set a pilot row's columns for one transition (in place)."""
    if new_job:
        row["job_id"] = up.job_id
    if new is old:
        return
    row["state"] = new.value
    row["state_since"] = now
    if new in (PilotState.RUNNING, PilotState.JOINED) and row["started_at"] is None:
        row["started_at"] = now
    if new is PilotState.JOINED and row["joined_at"] is None:
        row["joined_at"] = now
    if new not in LIVE:
        row["ended_at"] = now
        if up.exit_code is not None:
            row["exit_code"] = up.exit_code
    if detail:
        row["reason"] = detail


#: ids per ``IN (...)`` list (SQLite allows 32766 bound parameters, PostgreSQL 65535)
_CHUNK = 500


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL: a commit is not synced to disk until the next checkpoint, so
    # a power cut may lose the last transactions but never corrupts the file (a process crash
    # loses nothing); without it every one of a cycle's commits waits for an fsync
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class Ledger:
    """Access to the ledger database; open it with :meth:`open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Ledger:
        """Connect and bring the schema up to date (Alembic migrations)."""
        try:
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                path = Path(url.removeprefix("sqlite:///"))
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            ledger = cls(engine)
            if migrate:
                ledger.migrate()
            return ledger
        except (SQLAlchemyError, OSError) as exc:
            raise LedgerError(f"cannot open the ledger at {url}: {exc}") from exc

    def migrate(self) -> None:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self) -> Session:
        return self._session()

    # -- writing ----------------------------------------------------------------------------
    def record_requests(
        self,
        *,
        factory: str,
        site: str,
        submission_id: str,
        requests: Sequence[PilotRequest],
        now: float,
        detail: str = "",
    ) -> list[PilotRecord]:
        """Record pilots about to be submitted (state ``requested``), in one transaction;
        returns their records."""
        records = [
            PilotRecord(
                pilot_id=req.pilot_id,
                factory=factory,
                site=site,
                submission_id=submission_id,
                array_index=i if len(requests) > 1 else None,
                job_id=None,
                state=PilotState.REQUESTED,
                cpus=req.cpus,
                memory_mb=req.memory_mb,
                disk_mb=req.disk_mb,
                gpus=req.gpus,
                walltime_s=req.walltime_s,
                created_at=now,
                state_since=now,
                started_at=None,
                joined_at=None,
                ended_at=None,
                exit_code=None,
                reason="",
            )
            for i, req in enumerate(requests)
        ]
        if not records:
            return records
        try:
            with self.engine.begin() as conn:
                # vars, not asdict: the fields are flat, a deep copy of each is wasted
                conn.execute(insert(_PILOTS), [{**vars(r), "state": r.state.value} for r in records])
                conn.execute(
                    insert(_TRANSITIONS),
                    [
                        {
                            "pilot_id": r.pilot_id,
                            "at": now,
                            "from_state": None,
                            "to_state": PilotState.REQUESTED.value,
                            "event": "request",
                            "detail": detail,
                        }
                        for r in records
                    ],
                )
        except IntegrityError as exc:
            raise LedgerError(f"cannot record submission {submission_id}: {exc.orig}") from exc
        return records

    def apply(self, updates: Iterable[Update], now: float) -> list[PilotRecord]:
        """Apply events; every resulting transition (state change or new job id) is written
        with its history row in one transaction. Returns the pilots that changed.

        The pilots are read in one query per 500 and written with one statement for all their
        changes (Core, not the ORM's unit of work: a cycle may change thousands)."""
        updates = list(updates)
        if not updates:
            return []
        changed: dict[str, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            rows: dict[str, dict[str, Any]] = {}
            ids = sorted({up.pilot_id for up in updates})
            for i in range(0, len(ids), _CHUNK):  # one query per chunk, not one per pilot
                rows.update(
                    (m["pilot_id"], dict(m)) for m in conn.execute(_BY_IDS, {"ids": ids[i : i + _CHUNK]}).mappings()
                )
            for up in updates:
                row = rows.get(up.pilot_id)
                if row is None:
                    raise LedgerError(f"no pilot {up.pilot_id!r} in the ledger")
                old = PilotState(row["state"])
                new = next_state(old, up.event)
                new_job = up.job_id is not None and up.job_id != row["job_id"]
                if new is old and not new_job:
                    continue
                # details quote sites' and commands' answers, which may echo a secret (a token)
                detail = redact(up.detail) if up.detail else up.detail
                at = now if up.at is None else min(now, max(up.at, row["state_since"]))
                _transition(row, new, old, up, at, detail, new_job)
                changed[row["pilot_id"]] = row
                history.append(
                    {
                        "pilot_id": row["pilot_id"],
                        "at": at,
                        "from_state": old.value,
                        "to_state": new.value,
                        "event": up.event.value,
                        "detail": detail,
                    }
                )
            if changed:
                conn.execute(_SET_BY_ID, [{"b_pilot_id": k, **{c: r[c] for c in _MUTABLE}} for k, r in changed.items()])
                conn.execute(insert(_TRANSITIONS), history)
        return [_record(r) for r in changed.values()]

    def record_cycle(self, cycle: CycleRecord) -> None:
        c = cycle
        row = {
            **{k: getattr(c, k) for k in ("factory", "started_at", "duration_s", "dry_run", "submitted", "cancelled")},
            "errors": c.errors,
            "plan_json": json.dumps(c.plan, sort_keys=True),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(cast(Table, CycleRow.__table__)), row)

    # -- reading ----------------------------------------------------------------------------
    def pilots(
        self,
        *,
        factory: str | None = None,
        site: str | None = None,
        states: Iterable[PilotState] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PilotRecord]:
        """Pilots newest first; ``offset`` and ``limit`` page through them."""
        q = select(_PILOTS).order_by(PilotRow.created_at.desc(), PilotRow.pilot_id)
        if factory is not None:
            q = q.where(PilotRow.factory == factory)
        if site is not None:
            q = q.where(PilotRow.site == site)
        if states is not None:
            q = q.where(PilotRow.state.in_([st.value for st in states]))
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return self._records(q)

    def pilots_since(self, factory: str, since: float) -> list[PilotRecord]:
        """Live pilots and those that ended at or after ``since`` (spend over a window)."""
        q = select(_PILOTS).where(
            PilotRow.factory == factory,
            or_(PilotRow.state.in_([st.value for st in LIVE]), PilotRow.ended_at >= since),
        )
        return self._records(q)

    def pilots_ended_since(self, factory: str, since: float) -> list[PilotRecord]:
        """Pilots that ended at or after ``since`` (with the live ones: spend over a window)."""
        q = select(_PILOTS).where(
            PilotRow.factory == factory,
            PilotRow.ended_at >= since,
            PilotRow.state.not_in([st.value for st in LIVE]),
        )
        return self._records(q)

    def known_pilot_ids(self, factory: str, pilot_ids: Iterable[str]) -> set[str]:
        """Which of these pilot ids are this factory's (one query per 500 ids)."""
        ids = sorted(set(pilot_ids))
        out: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                out.update(conn.scalars(_KNOWN_IDS, {"factory": factory, "ids": ids[i : i + _CHUNK]}))
        return out

    def pilots_of_submissions(self, factory: str, submission_ids: Iterable[str]) -> list[PilotRecord]:
        ids = sorted(set(submission_ids))
        if not ids:
            return []
        q = select(_PILOTS).where(PilotRow.factory == factory, PilotRow.submission_id.in_(ids))
        return self._records(q)

    def _records(self, q: Any) -> list[PilotRecord]:
        with self.engine.connect() as conn:
            return [_record(m) for m in conn.execute(q).mappings()]

    def live_pilots(self, factory: str, site: str | None = None) -> list[PilotRecord]:
        return self.pilots(factory=factory, site=site, states=LIVE)

    def pilot(self, pilot_id: str) -> PilotRecord | None:
        with self._tx() as s:
            row = s.get(PilotRow, pilot_id)
            return PilotRecord.of(row) if row else None

    def transitions(self, pilot_id: str) -> list[TransitionRecord]:
        q = select(TransitionRow).where(TransitionRow.pilot_id == pilot_id)
        with self._tx() as s:
            return [
                TransitionRecord(
                    r.pilot_id,
                    r.at,
                    PilotState(r.from_state) if r.from_state else None,
                    PilotState(r.to_state),
                    r.event,
                    r.detail,
                )
                for r in s.scalars(q.order_by(TransitionRow.id))
            ]

    def counts(self, factory: str) -> dict[tuple[str, PilotState], int]:
        q = (
            select(PilotRow.site, PilotRow.state, func.count())
            .where(PilotRow.factory == factory)
            .group_by(PilotRow.site, PilotRow.state)
        )
        with self._tx() as s:
            return {(site, PilotState(st)): n for site, st, n in s.execute(q)}

    def last_cycle(self, factory: str) -> CycleRecord | None:
        q = select(CycleRow).where(CycleRow.factory == factory).order_by(CycleRow.id.desc())
        with self._tx() as s:
            row = s.scalars(q.limit(1)).first()
            if row is None:
                return None
            return CycleRecord(
                row.factory,
                row.started_at,
                row.duration_s,
                row.dry_run,
                row.submitted,
                row.cancelled,
                row.errors,
                json.loads(row.plan_json),
            )
