"""A lease in the ledger: of several factories sharing one ledger, only the holder acts.

Taking or renewing the lease is one atomic ``UPDATE ... WHERE holder = me OR expires_at < now``
(or the ``INSERT`` of the first row), so it is safe on SQLite and on PostgreSQL alike and needs
no advisory lock that a dead connection could leave behind. A holder that dies stops renewing;
its lease expires after ``ttl`` and the next candidate to try takes it. Times are the callers'
clocks: the factories sharing a ledger need clocks within a fraction of the TTL of each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Float, String, delete, or_, select, update
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


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired_at: float
    expires_at: float


def acquire_lease(ledger: Ledger, name: str, holder: str, ttl: float, now: float) -> bool:
    """Take or renew the lease ``name`` for ``ttl`` seconds; True when ``holder`` has it."""
    with Session(ledger.engine) as s, s.begin():
        row = s.get(LeaseRow, name)
        if row is not None and row.holder != holder and row.expires_at >= now:
            return False
        done = s.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, or_(LeaseRow.holder == holder, LeaseRow.expires_at < now))
            .values(
                holder=holder,
                expires_at=now + ttl,
                acquired_at=(row.acquired_at if row is not None and row.holder == holder else now),
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            return True
        if row is not None:
            return False
    try:
        with Session(ledger.engine) as s, s.begin():
            s.add(LeaseRow(name=name, holder=holder, acquired_at=now, expires_at=now + ttl))
        return True
    except IntegrityError:  # another candidate inserted it first
        return False


def release_lease(ledger: Ledger, name: str, holder: str) -> None:
    """Give the lease up at once (a clean shutdown), so a standby takes over on its next try."""
    with Session(ledger.engine) as s, s.begin():
        s.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))


def current_lease(ledger: Ledger, name: str) -> Lease | None:
    with Session(ledger.engine) as s:
        row = s.scalars(select(LeaseRow).where(LeaseRow.name == name)).first()
        return Lease(row.name, row.holder, row.acquired_at, row.expires_at) if row else None
