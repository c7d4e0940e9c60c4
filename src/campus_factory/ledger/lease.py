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

from sqlalchemy import Float, String, Table, case, delete, insert, or_, select, update
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


def acquire_lease(ledger: Ledger, name: str, holder: str, ttl: float, now: float) -> bool:
    """Take or renew the lease ``name`` for ``ttl`` seconds; True when ``holder`` has it.

    One ``UPDATE`` when the row exists (a renewal keeps its ``acquired_at``: SET expressions see
    the row as it was), the ``INSERT`` of the row otherwise."""
    t = _LEASES.c
    with ledger.engine.begin() as conn:
        done = conn.execute(
            update(_LEASES)
            .where(t.name == name, or_(t.holder == holder, t.expires_at < now))
            .values(
                holder=holder, expires_at=now + ttl, acquired_at=case((t.holder == holder, t.acquired_at), else_=now)
            )
        )
        if done.rowcount == 1:
            return True
        if conn.execute(select(t.name).where(t.name == name)).first() is not None:
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
    t = _LEASES.c
    with ledger.engine.connect() as conn:
        row = conn.execute(select(t.name, t.holder, t.acquired_at, t.expires_at).where(t.name == name)).first()
        return Lease(row.name, row.holder, row.acquired_at, row.expires_at) if row else None
