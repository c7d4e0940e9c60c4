"""SQLAlchemy tables of the ledger. Times are UNIX seconds (UTC) as floats."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "CycleRow", "PilotRow", "TransitionRow"]


class Base(DeclarativeBase):
    pass


class PilotRow(Base):
    __tablename__ = "pilots"

    pilot_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    factory: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[str] = mapped_column(String(64))
    array_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    cpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_mb: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer)
    walltime_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    state_since: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    joined_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_pilots_factory_state", "factory", "state"),
        Index("ix_pilots_site_job", "site", "job_id"),
        Index("ix_pilots_submission", "submission_id"),
        Index("ix_pilots_factory_site_created", "factory", "site", "created_at"),
        Index("ix_pilots_factory_created", "factory", "created_at"),
        Index("ix_pilots_factory_ended", "factory", "ended_at"),
    )


class TransitionRow(Base):
    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pilot_id: Mapped[str] = mapped_column(ForeignKey("pilots.pilot_id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")


class CycleRow(Base):
    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    factory: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    submitted: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    plan_json: Mapped[str] = mapped_column(Text, default="{}")
