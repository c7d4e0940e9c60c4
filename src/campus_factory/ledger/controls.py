"""Operator controls kept in the ledger: site controls (pause, drain) and queued requests.

(A site's scale floor/ceiling is the other operator control: ``ledger.overrides``, migration 0002.)

The API writes them; the loop reads them each cycle (it is the only writer of pilot states):

* :func:`site_controls` -> a paused site gets no new pilots (treat it like ``enabled = false``);
  a draining site is paused and its pilots were asked to leave.
* :func:`pending_requests` -> ``drain_pilot`` requests: cancel that pilot gracefully, then
  :func:`complete_request` with what happened.

Both survive restarts, and several API processes may write them (the rows are the truth).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Boolean, Float, Integer, String, Table, Text, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, PilotRow
from .states import LIVE
from .store import Ledger

__all__ = [
    "DRAIN_PILOT",
    "OperatorRequest",
    "OperatorRequestRow",
    "SiteControl",
    "SiteControlRow",
    "complete_request",
    "drain_pilot",
    "drain_site",
    "pending_requests",
    "requests",
    "set_paused",
    "site_controls",
]

DRAIN_PILOT = "drain_pilot"
_T = TypeVar("_T")


class SiteControlRow(Base):
    __tablename__ = "site_controls"

    factory: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(128), default="")


class OperatorRequestRow(Base):
    __tablename__ = "operator_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    factory: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    done_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class SiteControl:
    factory: str
    site: str
    paused: bool
    draining: bool
    reason: str
    updated_at: float
    updated_by: str


@dataclass(frozen=True)
class OperatorRequest:
    id: int
    factory: str
    kind: str
    target: str
    reason: str
    created_at: float
    created_by: str
    done_at: float | None
    result: str


def _control(r: Any) -> SiteControl:  # an ORM row or a Core row of site_controls
    return SiteControl(r.factory, r.site, r.paused, r.draining, r.reason, r.updated_at, r.updated_by)


def _request(r: Any) -> OperatorRequest:  # an ORM row or a Core row of operator_requests
    return OperatorRequest(r.id, r.factory, r.kind, r.target, r.reason, r.created_at, r.created_by, r.done_at, r.result)


_CONTROLS = cast(Table, SiteControlRow.__table__)
_REQUESTS = cast(Table, OperatorRequestRow.__table__)
# read every cycle by the loop: built once, run on a Core connection
_CONTROLS_OF = select(_CONTROLS).where(_CONTROLS.c.factory == bindparam("factory"))
_PENDING_OF = (
    select(_REQUESTS)
    .where(_REQUESTS.c.factory == bindparam("factory"), _REQUESTS.c.done_at.is_(None))
    .order_by(_REQUESTS.c.id)
)


def site_controls(ledger: Ledger, factory: str) -> dict[str, SiteControl]:
    """Controls by site name (sites never paused nor drained are absent)."""
    with ledger.engine.connect() as conn:
        return {r.site: _control(r) for r in conn.execute(_CONTROLS_OF, {"factory": factory})}


def _upsert(
    ledger: Ledger, factory: str, site: str, change: Callable[[Session, SiteControlRow], _T]
) -> tuple[SiteControl, _T]:
    """Apply ``change`` to the site's control row in one transaction, creating the row if needed;
    a concurrent creation of the same row (another API process) is retried once."""
    for attempt in (1, 2):
        try:
            with Session(ledger.engine, expire_on_commit=False) as s, s.begin():
                row = s.get(SiteControlRow, (factory, site))
                if row is None:
                    row = SiteControlRow(factory=factory, site=site, paused=False, draining=False)
                    s.add(row)
                result = change(s, row)
                s.flush()
                return _control(row), result
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def set_paused(
    ledger: Ledger, factory: str, site: str, paused: bool, *, now: float, by: str = "", reason: str = ""
) -> SiteControl:
    """Pause a site (no new pilots) or resume it (which also ends a drain)."""

    def change(_s: Session, row: SiteControlRow) -> None:
        row.paused = paused
        if not paused:
            row.draining = False
        row.reason, row.updated_at, row.updated_by = reason, now, by

    return _upsert(ledger, factory, site, change)[0]


def drain_site(
    ledger: Ledger, factory: str, site: str, *, now: float, by: str = "", reason: str = ""
) -> tuple[SiteControl, list[OperatorRequest]]:
    """Pause the site and ask each of its live pilots to leave (one request per pilot)."""

    def change(s: Session, row: SiteControlRow) -> list[OperatorRequestRow]:
        row.paused, row.draining = True, True
        row.reason, row.updated_at, row.updated_by = reason, now, by
        live = s.scalars(
            select(PilotRow.pilot_id).where(
                PilotRow.factory == factory,
                PilotRow.site == site,
                PilotRow.state.in_([st.value for st in LIVE]),
            )
        ).all()
        return [_new_request(s, factory, pid, now, by, reason or f"site {site} drained") for pid in sorted(live)]

    control, rows = _upsert(ledger, factory, site, change)
    return control, [_request(r) for r in rows]


def _new_request(s: Session, factory: str, pilot_id: str, now: float, by: str, reason: str) -> OperatorRequestRow:
    pending = s.scalars(
        select(OperatorRequestRow).where(
            OperatorRequestRow.factory == factory,
            OperatorRequestRow.kind == DRAIN_PILOT,
            OperatorRequestRow.target == pilot_id,
            OperatorRequestRow.done_at.is_(None),
        )
    ).first()
    if pending is not None:
        return pending
    row = OperatorRequestRow(
        factory=factory, kind=DRAIN_PILOT, target=pilot_id, reason=reason, created_at=now, created_by=by, result=""
    )
    s.add(row)
    return row


def drain_pilot(
    ledger: Ledger, factory: str, pilot_id: str, *, now: float, by: str = "", reason: str = ""
) -> OperatorRequest:
    """Queue a request for the loop to ask this pilot to leave (idempotent while pending)."""
    with Session(ledger.engine, expire_on_commit=False) as s, s.begin():
        row = _new_request(s, factory, pilot_id, now, by, reason or "drained by an operator")
        s.flush()
        return _request(row)


def pending_requests(ledger: Ledger, factory: str) -> list[OperatorRequest]:
    """Requests the loop has not handled yet, oldest first."""
    with ledger.engine.connect() as conn:
        return [_request(r) for r in conn.execute(_PENDING_OF, {"factory": factory})]


def requests(ledger: Ledger, factory: str, limit: int = 100) -> list[OperatorRequest]:
    """The latest requests, handled or not, newest first."""
    q = (
        select(OperatorRequestRow)
        .where(OperatorRequestRow.factory == factory)
        .order_by(OperatorRequestRow.id.desc())
        .limit(limit)
    )
    with Session(ledger.engine) as s:
        return [_request(r) for r in s.scalars(q)]


def complete_request(ledger: Ledger, request_id: int, *, now: float, result: str) -> None:
    """Mark a request handled, with what happened (e.g. 'asked to leave', 'already ended')."""
    with Session(ledger.engine) as s, s.begin():
        row = s.get(OperatorRequestRow, request_id)
        if row is not None and row.done_at is None:
            row.done_at, row.result = now, result
