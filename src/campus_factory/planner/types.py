"""The planner's inputs and outputs: plain frozen data, no I/O objects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ALIVE_STATES",
    "QUEUED_STATES",
    "Cancel",
    "GroupDecision",
    "PilotView",
    "Plan",
    "SitePlan",
    "SiteSpec",
]

#: pilot states (ledger vocabulary) that wait in a site's queue
QUEUED_STATES = frozenset({"requested", "queued"})
#: pilot states that occupy a place at a site
ALIVE_STATES = frozenset({"requested", "queued", "running", "joined", "retiring"})


@dataclass(frozen=True)
class SiteSpec:
    """What the planner knows of a site: its slot, limits and health this cycle."""

    name: str
    cpus: int
    memory_mb: int
    disk_mb: int = 0
    gpus: int = 0
    max_pilots: int = 10
    max_queued: int = 5
    max_submit_per_cycle: int = 5
    walltime_s: float = 4 * 3600.0
    idle_timeout_s: float = 600.0
    enabled: bool = True
    healthy: bool = True
    health_note: str = ""


@dataclass(frozen=True)
class PilotView:
    """A live pilot as the planner sees it. ``busy`` is None when the pool was not asked."""

    pilot_id: str
    site: str
    state: str
    since: float
    busy: bool | None = None
    has_job_id: bool = True


@dataclass(frozen=True)
class Cancel:
    pilot_id: str
    graceful: bool
    reason: str


@dataclass(frozen=True)
class GroupDecision:
    """Where a job group goes, and why."""

    group_id: str
    idle_jobs: int
    site: str | None
    pilots: int
    jobs_per_pilot: int
    reason: str


@dataclass(frozen=True)
class SitePlan:
    site: str
    submit: int
    cancel: tuple[Cancel, ...]
    needed: int
    supply: int
    bound_by: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    now: float
    sites: tuple[SitePlan, ...]
    groups: tuple[GroupDecision, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def site(self, name: str) -> SitePlan:
        for sp in self.sites:
            if sp.site == name:
                return sp
        raise KeyError(name)

    @property
    def total_submit(self) -> int:
        return sum(sp.submit for sp in self.sites)

    @property
    def total_cancel(self) -> int:
        return sum(len(sp.cancel) for sp in self.sites)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
