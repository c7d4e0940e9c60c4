"""Site overrides: a manual floor and ceiling of pilots per site (``campus-factory site scale``).

The seed's "tell the cloud how many instances we want": an operator sets, in the ledger, the
least and the most pilots a site should have; they replace ``limits.floor`` and
``limits.ceiling`` of the config until cleared. The loop reads them each cycle
(:func:`get_overrides`) and hands the planner :func:`apply_override` of each site's limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    ColumnElement,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from ..config import SiteLimits
from ..errors import ConfigError, LedgerError
from .store import Ledger

__all__ = ["SiteOverride", "apply_override", "clear_override", "get_overrides", "set_override"]

_meta = MetaData()
site_overrides = Table(
    "site_overrides",
    _meta,
    Column("factory", String(64), primary_key=True),
    Column("site", String(64), primary_key=True),
    Column("floor", Integer, nullable=True),
    Column("ceiling", Integer, nullable=True),
    Column("updated_at", Float, nullable=False),
    Column("note", Text, nullable=False, default=""),
)


@dataclass(frozen=True)
class SiteOverride:
    factory: str
    site: str
    floor: int | None  # None: the config's limits.floor
    ceiling: int | None  # None: the config's limits.ceiling
    updated_at: float
    note: str = ""


def apply_override(limits: SiteLimits, override: SiteOverride | None) -> SiteLimits:
    """The site's limits with the override's floor and ceiling (validated like the config)."""
    if override is None:
        return limits
    data = limits.model_dump()
    if override.floor is not None:
        data["floor"] = override.floor
    if override.ceiling is not None:
        data["ceiling"] = override.ceiling
    try:
        return SiteLimits.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"site {override.site}: the scale override does not fit its limits: {exc}") from exc


def set_override(
    ledger: Ledger, factory: str, site: str, *, floor: int | None, ceiling: int | None, now: float, note: str = ""
) -> SiteOverride:
    """Record (or replace) the override of one site."""
    if (floor is not None and floor < 0) or (ceiling is not None and ceiling < 0):
        raise ConfigError("--min and --max cannot be negative")
    if floor is not None and ceiling is not None and floor > ceiling:
        raise ConfigError(f"--min {floor} is above --max {ceiling}")
    row = {"factory": factory, "site": site, "floor": floor, "ceiling": ceiling, "updated_at": now, "note": note}
    try:
        with ledger.engine.begin() as conn:
            conn.execute(delete(site_overrides).where(_key(factory, site)))
            conn.execute(site_overrides.insert().values(**row))
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot record the override of site {site}: {exc}") from exc
    return SiteOverride(**row)  # type: ignore[arg-type]


def clear_override(ledger: Ledger, factory: str, site: str) -> bool:
    """Remove the override of one site; True when there was one."""
    try:
        with ledger.engine.begin() as conn:
            return bool(conn.execute(delete(site_overrides).where(_key(factory, site))).rowcount)
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot clear the override of site {site}: {exc}") from exc


_OVERRIDES_OF = select(site_overrides).where(site_overrides.c.factory == bindparam("factory"))  # every cycle


def get_overrides(ledger: Ledger, factory: str) -> dict[str, SiteOverride]:
    """Every override of this factory, by site."""
    try:
        with ledger.engine.connect() as conn:
            rows = conn.execute(_OVERRIDES_OF, {"factory": factory}).mappings()
            return {r["site"]: SiteOverride(**dict(r)) for r in rows}
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the site overrides: {exc}") from exc


def _key(factory: str, site: str) -> ColumnElement[bool]:
    return and_(site_overrides.c.factory == factory, site_overrides.c.site == site)
