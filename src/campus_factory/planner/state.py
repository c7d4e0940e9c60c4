"""A site's state while a plan is made: its budget in pilots or cores, and its bins.

At a site sizing pilots to demand (``fit``) the pilot limits count cores in whole slots and a
pilot counts its own cores; at a fixed site they count pilots (``max_cores`` in whole slots).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..domain import JobGroup
from .flavors import chooser
from .packing import Shape, SiteBins, per_bin
from .types import QUEUED_STATES, PilotView, SiteSpec

__all__ = [
    "INF",
    "SiteState",
    "fits",
    "job_shape",
    "jobs_per_pilot",
    "pilot_shape",
    "site_bins",
    "site_budget",
    "site_order",
    "slot_shape",
    "weight",
]

INF = float("inf")


def slot_shape(site: SiteSpec) -> Shape:
    return (site.cpus, site.memory_mb, site.disk_mb if site.disk_mb > 0 else -1, site.gpus)


def pilot_shape(site: SiteSpec, p: PilotView) -> Shape:
    """A pilot's resources: as requested at a site sizing pilots to demand, else the site's slot
    (which learned pilot ads may have refined)."""
    full = slot_shape(site)
    if site.sizing != "fit":
        return full
    disk = full[2] if full[2] < 0 or p.disk_mb is None else p.disk_mb
    return (
        full[0] if p.cpus is None else p.cpus,
        full[1] if p.memory_mb is None else p.memory_mb,
        disk,
        full[3] if p.gpus is None else p.gpus,
    )


def job_shape(g: JobGroup) -> Shape:
    return (max(g.cpus, 1), max(g.memory_mb, 0), max(g.disk_mb, 0), max(g.gpus, 0))


def jobs_per_pilot(group: JobGroup, site: SiteSpec) -> int:
    """How many of the group's jobs one empty pilot of the site holds (0 when none fits)."""
    return per_bin(slot_shape(site), job_shape(group))


def fits(group: JobGroup, site: SiteSpec) -> str | None:
    """None when one job fits the site's slot (resources only), else what is missing."""
    from .match import resource_misfit

    return resource_misfit(group, site) or None


def site_order(site: SiteSpec, index: int) -> tuple[float, float, float, int]:
    """Preference key (smaller first): rank, cost per core-hour, start latency, config order.

    Latency counts in whole minutes (sites a few seconds apart keep their config order); a site
    with no recent start counts as fast, so it gets tried.
    """
    latency = site.health.start_latency_s if site.health and site.health.start_latency_s else 0.0
    return (-site.rank, site.cost_per_core_hour, float(int(latency // 60)), index)


@dataclass
class SiteState:
    spec: SiteSpec
    index: int
    pilots: list[PilotView]
    bins: SiteBins
    bound: str | None
    rooms: dict[str, int]
    reasons: list[str] = field(default_factory=list)
    matched_groups: int = 0
    exhausted: bool = False
    key: tuple[float, float, float, int] = (0.0, 0.0, 0.0, 0)
    expected: float = 0.0  # seconds until a pilot submitted now joins (planner.warm)
    buffered: int = 0  # jobs of the warm buffer placed here

    def __post_init__(self) -> None:
        self.key = site_order(self.spec, self.index)


def weight(site: SiteSpec, p: PilotView) -> int:
    """What a pilot counts against the site's pilot limits: 1 at a fixed site; its cores at a fit
    site, whose limits count cores in whole slots (``max_pilots = 10`` with 16-core slots: 160 cores
    in pilots of any size)."""
    if site.sizing != "fit":
        return 1
    return site.cpus if p.cpus is None else p.cpus  # pilot_shape(site, p)[0], without the tuple


def site_budget(site: SiteSpec, pilots: Sequence[PilotView]) -> tuple[int, int | None, str | None, dict[str, int]]:
    """(new pilots, new cores or None, what stops the site, room left per limit).

    At a fixed site every room is in pilots (``max_cores`` in whole slots) and there is no core
    budget. At a fit site the pilot limits are rooms in cores (each limit times the slot's cores),
    ``max_cores`` is in cores, and the pilot count is bounded only while probing.
    """
    fit = site.sizing == "fit"
    unit = max(site.cpus, 1) if fit else 1
    alive = sum(weight(site, p) for p in pilots)
    queued = sum(weight(site, p) for p in pilots if p.state in QUEUED_STATES)
    rooms = {
        "max_pilots": site.max_pilots * unit - alive,
        "max_queued": site.max_queued * unit - queued,
        "max_submit_per_cycle": site.max_submit_per_cycle * unit,
    }
    if site.ceiling is not None:
        rooms["ceiling"] = site.ceiling * unit - alive
    if site.max_cores is not None:
        left = site.max_cores - sum(pilot_shape(site, p)[0] for p in pilots)
        rooms["max_cores"] = left if fit else left // max(site.cpus, 1)
    health = site.health
    pilots_room = None
    if not site.healthy:
        return 0, 0 if fit else None, "unhealthy", rooms
    if not site.enabled:
        return 0, 0 if fit else None, "disabled", rooms
    if health is not None and health.state == "backoff":
        return 0, 0 if fit else None, "black_hole" if health.black_hole else "backoff", rooms
    if health is not None and health.state == "probing":
        pilots_room = 1 - sum(1 for p in pilots if p.state in QUEUED_STATES)
        rooms["probing"] = pilots_room * unit  # one pilot in the queue (at a fit site: at most a slot)
    room = max(0, min(rooms.values()))
    if not fit:
        return room, None, None, rooms
    return (room if pilots_room is None else max(0, pilots_room)), room, None, rooms


def site_bins(site: SiteSpec, pilots: Sequence[PilotView], budget: int, cores: int | None, now: float) -> SiteBins:
    """Capacity already there. At a ``fit`` site a pilot takes only jobs that fill all its cores
    (its glidein's START), never a smaller one; the site's slot ad has no such clause."""
    fit = site.sizing == "fit"
    choose = chooser(site.instance_types) if site.instance_types else None
    bins = SiteBins(slot_shape(site), site.walltime_s, budget, fit=fit, core_budget=cores, choose=choose)
    fill = fit and not site.instance_types  # an instance of a chosen type takes any job that fits it
    running = sorted((p for p in pilots if p.state in ("running", "joined")), key=lambda p: (p.since, p.pilot_id))
    queued = sorted((p for p in pilots if p.state in QUEUED_STATES), key=lambda p: (p.since, p.pilot_id))
    for p in running:
        full = pilot_shape(site, p)
        if p.busy is True and p.free_cpus is None:
            free: Shape = (0, 0, 0, 0)
        else:
            free = (
                full[0] if p.free_cpus is None else p.free_cpus,
                full[1] if p.free_memory_mb is None else p.free_memory_mb,
                full[2] if p.free_disk_mb is None or full[2] < 0 else p.free_disk_mb,
                full[3] if p.free_gpus is None else p.free_gpus,
            )
        life = INF if p.retire_at is None else p.retire_at - now
        bins.add_existing(p.pilot_id, free, life, full[0] if fill else 0)
    if site.enabled:  # a disabled site's queued pilots are not capacity: they are cancelled
        for p in queued:
            own = pilot_shape(site, p)
            bins.add_existing(p.pilot_id, own, site.walltime_s, own[0] if fill else 0)
    return bins
