"""A lease in the ledger: of several factories sharing one ledger, only the holder acts.

Taking or renewing the lease is one atomic ``UPDATE ... WHERE holder = me OR expires_at < now``
(or the ``INSERT`` of the first row), so it is safe on SQLite and on PostgreSQL alike and needs
no advisory lock that a dead connection could leave behind. A holder that dies stops renewing;
its lease expires after ``ttl`` and the next candidate to try takes it. Times are the callers'
clocks: the factories sharing a ledger need clocks within a fraction of the TTL of each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Float, String, Table, bindparam, case, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base
from .store import Ledger

__all__ = ["Lease", "LeaseRow", "acquire_lease", "current_lease", "release_lease"]


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


_LEASES = cast(Table, LeaseRow.__table__)


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired_at: float
    expires_at: float


_t = _LEASES.c
_now, _holder = bindparam("now", type_=Float), bindparam("b_holder", type_=String)
# run every cycle by the acting factory: built once (a renewal keeps its ``acquired_at``: the
# SET expressions see the row as it was)
_RENEW = (
    update(_LEASES)
    .where(_t.name == bindparam("b_name"), or_(_t.holder == _holder, _t.expires_at < _now))
    .values(
        holder=_holder,
        expires_at=bindparam("until", type_=Float),
        acquired_at=case((_t.holder == _holder, _t.acquired_at), else_=_now),
    )
)
_BY_NAME = select(_t.name, _t.holder, _t.acquired_at, _t.expires_at).where(_t.name == bindparam("b_name"))


def acquire_lease(ledger: Ledger, name: str, holder: str, ttl: float, now: float) -> bool:
    """Take or renew the lease ``name`` for ``ttl`` seconds; True when ``holder`` has it.

    One ``UPDATE`` when the row exists, the ``INSERT`` of the row otherwise."""
    with ledger.engine.begin() as conn:
        done = conn.execute(_RENEW, {"b_name": name, "b_holder": holder, "now": now, "until": now + ttl})
        if done.rowcount == 1:
            return True
        if conn.execute(_BY_NAME, {"b_name": name}).first() is not None:
            return False
    try:
        with ledger.engine.begin() as conn:
            conn.execute(insert(_LEASES).values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl))
        return True
    except IntegrityError:  # another candidate inserted it first
        return False


def release_lease(ledger: Ledger, name: str, holder: str) -> None:
    """Give the lease up at once (a clean shutdown), so a standby takes over on its next try."""
    with Session(ledger.engine) as s, s.begin():
        s.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))


def current_lease(ledger: Ledger, name: str) -> Lease | None:
    with ledger.engine.connect() as conn:
        row = conn.execute(_BY_NAME, {"b_name": name}).first()
        return Lease(row.name, row.holder, row.acquired_at, row.expires_at) if row else None
