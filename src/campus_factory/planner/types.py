"""The planner's inputs and outputs: plain frozen data, no I/O objects.

Every output is JSON-friendly (``Plan.to_dict()`` is stored with each cycle in the ledger).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from functools import cached_property, lru_cache
from typing import Any

from ..classads import signature
from ..domain import InstanceShape

__all__ = [
    "ALIVE_STATES",
    "QUEUED_STATES",
    "Cancel",
    "GroupDecision",
    "PilotSize",
    "PilotView",
    "Placement",
    "Plan",
    "SiteHealth",
    "SitePlan",
    "SiteSpec",
    "SlotAd",
]

#: pilot states (ledger vocabulary) that wait in a site's queue
QUEUED_STATES = frozenset({"requested", "queued"})
#: pilot states that occupy a place at a site
ALIVE_STATES = frozenset({"requested", "queued", "running", "joined", "retiring"})


@lru_cache(maxsize=4096)
def _signature(attributes: tuple[tuple[str, str], ...]) -> str:
    """:func:`signature`, once per distinct ad (a site's slot ad is built again every cycle)."""
    return signature(attributes)


@dataclass(frozen=True)
class SlotAd:
    """The ClassAd of a pilot a site would start: attribute -> ClassAd expression text.

    Built by :func:`campus_factory.planner.slotad.build_slot_ad`; its :attr:`signature` keys
    the match cache, so two cycles with the same ad never evaluate the same match twice.
    """

    attributes: tuple[tuple[str, str], ...]

    @cached_property
    def signature(self) -> str:
        return _signature(self.attributes)

    def get(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.attributes:
            if k.lower() == low:
                return v
        return None

    def as_dict(self) -> dict[str, str]:
        return dict(self.attributes)


@dataclass(frozen=True)
class SiteHealth:
    """A site's recent pilot record, as computed by :func:`planner.health.site_health`.

    ``state``: ``ok`` (no limit), ``backoff`` (no new pilots until ``backoff_until``) or
    ``probing`` (the backoff expired: one pilot in the queue at a time until one succeeds).
    """

    state: str = "ok"
    consecutive_failures: int = 0
    backoff_until: float | None = None
    black_hole: bool = False
    start_latency_s: float | None = None
    reasons: tuple[str, ...] = ()
    join_latency_s: float | None = None  # median submission -> startd in the pool, of recent pilots
    latency_samples: int = 0


@dataclass(frozen=True)
class SiteSpec:
    """What the planner knows of a site: its slot, limits, policy and health this cycle.

    ``cpus``/``memory_mb``/``disk_mb``/``gpus`` size one pilot (learned values already applied);
    ``slot_ad`` is the ClassAd matched against jobs (None: a default ad from the resources).
    """

    name: str
    cpus: int
    memory_mb: int
    disk_mb: int = 0
    gpus: int = 0
    max_pilots: int = 10
    max_queued: int = 5
    max_submit_per_cycle: int = 5
    max_cores: int | None = None  # cores of all pilots alive at once (None: no such limit)
    walltime_s: float = 4 * 3600.0
    retire_margin_s: float = 0.0  # a pilot is asked to leave this long before its walltime ends
    idle_timeout_s: float = 600.0
    enabled: bool = True
    healthy: bool = True
    health_note: str = ""
    slot_ad: SlotAd | None = None
    rank: float = 0.0
    cost_per_core_hour: float = 0.0
    floor: int = 0
    ceiling: int | None = None
    job_runtime_s: float = 0.0
    health: SiteHealth | None = None
    offline_requests: int = 0
    sizing: str = "fixed"  # "fit": each new pilot is sized for one job (the slot is the largest pilot)
    #: a cloud site's instance types (cloud.instance_types, shapes read from the cloud): new pilots are
    #: the cheapest that fits their jobs, and the slot above is the largest of them per resource
    instance_types: tuple[InstanceShape, ...] = ()


@dataclass(frozen=True)
class PilotView:
    """A live pilot as the planner sees it.

    ``busy`` is None when the pool was not asked. ``free_*`` are the unclaimed resources of
    its partitionable slot (None: unknown, the whole pilot counts as free unless busy).
    ``retire_at`` is when it leaves (None: unknown, assumed long enough). ``cpus``/``memory_mb``/
    ``disk_mb``/``gpus`` size the pilot as it was requested (None: the site's slot).
    ``idle_since``: when its last job ended, as the loop saw it (None: unknown, ``since`` counts),
    so an idle timeout runs from the last job's end, not from the pilot's last state change.
    """

    pilot_id: str
    site: str
    state: str
    since: float
    busy: bool | None = None
    has_job_id: bool = True
    free_cpus: int | None = None
    free_memory_mb: int | None = None
    free_disk_mb: int | None = None
    free_gpus: int | None = None
    retire_at: float | None = None
    cpus: int | None = None
    memory_mb: int | None = None
    disk_mb: int | None = None
    gpus: int | None = None
    idle_since: float | None = None


@dataclass(frozen=True)
class Cancel:
    pilot_id: str
    graceful: bool
    reason: str


@dataclass(frozen=True)
class Placement:
    """Part of a job group placed at one site: jobs taken by capacity already there, and new pilots."""

    site: str
    jobs: int
    into_existing: int
    new_pilots: int
    instance_type: str = ""  # the new pilots' instance type, at a site choosing among several


@dataclass(frozen=True)
class GroupDecision:
    """Where a job group goes, and why. ``site`` is its first placement (None: nowhere)."""

    group_id: str
    idle_jobs: int
    site: str | None
    pilots: int
    jobs_per_pilot: int
    reason: str
    matched: tuple[str, ...] = ()
    placements: tuple[Placement, ...] = ()
    held_back: int = 0
    bound_by: tuple[str, ...] = ()
    buffer: int = 0  # jobs expected to arrive while new pilots start, provisioned for ahead
    runtime: str = ""  # the runtime assumed for its jobs and where it came from (planner.runtime)
    claims: int = 0  # idle jobs left to claims of its running jobs ending before a new pilot joins


#: cpus, memory MB, disk MB, GPUs of a pilot to submit, and how many of them
PilotSize = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class SitePlan:
    """What to do at one site. ``sizes``: the new pilots' sizes when they are not all the site's
    slot (sites with ``sizing = "fit"``), in submission order; counts add up to ``submit``."""

    site: str
    submit: int
    cancel: tuple[Cancel, ...]
    needed: int
    supply: int
    bound_by: str | None
    reasons: tuple[str, ...]
    jobs: int = 0
    health: str = "ok"
    sizes: tuple[PilotSize, ...] = ()
    expected_start_s: float = 0.0  # until a pilot submitted now joins (learned latency, congestion)
    start_note: str = ""  # the learned start latency behind it, for explain
    instance_types: tuple[str, ...] = ()  # the instance type of each entry of ``sizes`` (cloud sites)

    def instance_type_of(self, size: tuple[int, ...]) -> str:
        """The instance type chosen for new pilots of ``size`` (cpus, memory, disk, GPUs); "" if none."""
        for (c, m, d, g, _), name in zip(self.sizes, self.instance_types, strict=False):
            if (c, m, d, g) == tuple(size):
                return name
        return ""

    def pilot_sizes(self, slot: tuple[int, int, int, int]) -> tuple[PilotSize, ...]:
        """The ``submit`` new pilots by size: ``sizes`` cut to ``submit`` (a spend ceiling may have
        lowered it), then pilots of the site's ``slot`` (cpus, memory MB, disk MB, GPUs) for the rest."""
        out: list[PilotSize] = []
        left = self.submit
        for cpus, memory, disk, gpus, n in self.sizes:
            k = min(n, left)
            if k > 0:
                out.append((cpus, memory, disk, gpus, k))
                left -= k
        if left > 0:
            out.append((*slot, left))
        return tuple(out)


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

    def group(self, group_id: str) -> GroupDecision:
        for g in self.groups:
            if g.group_id == group_id:
                return g
        raise KeyError(group_id)

    @property
    def total_submit(self) -> int:
        return sum(sp.submit for sp in self.sites)

    @property
    def total_cancel(self) -> int:
        return sum(len(sp.cancel) for sp in self.sites)

    def to_dict(self) -> dict[str, Any]:
        """As :func:`dataclasses.asdict` gives it (tuples stay tuples), without its deep copies."""
        out = _plain(self)
        assert isinstance(out, dict)
        return out


_FIELDS: dict[type, tuple[str, ...]] = {}  # each dataclass's field names, looked up once


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS.get(type(value))
        if names is None:
            names = _FIELDS[type(value)] = tuple(f.name for f in fields(value))
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
