"""Building the planner's inputs from config, ledger records and pool observations.

Everything here is pure: the loop reads the ledger and the pool, and hands plain values in.
Records and pool slots are taken by shape (Protocols), so the planner imports no I/O module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from ..classads import literal
from ..config import CLOUD_PROVIDERS, SIZED_CLOUD_PROVIDERS, SiteConfig
from ..domain import InstanceShape
from .flavors import largest
from .health import HealthSettings, PilotHistory, outcomes, site_health
from .slotad import SlotPolicy, build_slot_ad, learned_items
from .types import PilotView, SiteHealth, SiteSpec

__all__ = [
    "PilotRecordLike",
    "SlotLike",
    "health_settings",
    "learned_resources",
    "pilot_views",
    "site_health_of",
    "site_spec",
    "site_specs",
    "slot_policy",
]


class PilotRecordLike(Protocol):
    """The ledger's ``PilotRecord`` as the planner reads it."""

    @property
    def pilot_id(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def state_since(self) -> float: ...
    @property
    def job_id(self) -> str | None: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def walltime_s(self) -> float: ...
    @property
    def cpus(self) -> int: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def disk_mb(self) -> int: ...
    @property
    def gpus(self) -> int: ...


class SlotLike(Protocol):
    """A pilot's partitionable slot in the pool (``pool.base.PilotSlot``)."""

    @property
    def busy(self) -> bool: ...
    @property
    def free_cpus(self) -> int: ...
    @property
    def free_memory_mb(self) -> int: ...
    @property
    def free_disk_mb(self) -> int: ...
    @property
    def free_gpus(self) -> int: ...


#: a pilot sized to its job advertises that job's resources, not the largest pilot of its site
_FIT_PINNED = ("Cpus", "Memory", "Disk", "GPUs")


def slot_policy(site: SiteConfig) -> SlotPolicy:
    """The slot-ad policy of a configured site."""
    attrs = [(k, literal(v)) for k, v in sorted(site.slot.attributes.items())]
    attrs += sorted(site.slot.expressions.items())
    declared = {k.lower() for k, _ in attrs}
    if site.provider in CLOUD_PROVIDERS and "iscloudnode" not in declared:
        attrs.append(("IsCloudNode", "true"))  # what a cloud pilot advertises
    return SlotPolicy(
        attributes=tuple(attrs),
        start=site.slot.start,
        allowed_owners=site.allowed_owners,
        allowed_groups=site.allowed_groups,
        preemptable=site.preemptable,
        pinned=site.slot.pinned + (_FIT_PINNED if site.sizing == "fit" else ()),
        learn_attributes=site.slot.learn_attributes,
    )


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value >= 0 else None


def learned_resources(site: SiteConfig, learned: Mapping[str, str] | None) -> tuple[int, int, int]:
    """(cpus, memory MB, GPUs) of one pilot: learned values win unless pinned or unparsable."""
    cpus, mem, gpus = site.slot.cpus, site.slot.memory_mb, site.slot.gpus
    if not learned or not site.slot.learn:
        return cpus, mem, gpus
    items = {k.lower(): v for k, v in learned_items(learned, slot_policy(site))}
    cpus = _int(items.get("cpus")) or cpus
    mem = _int(items.get("memory")) or mem
    learned_gpus = _int(items.get("gpus"))
    return cpus, mem, gpus if learned_gpus is None else learned_gpus


def site_spec(
    site: SiteConfig,
    learned: Mapping[str, str] | None = None,
    health: SiteHealth | None = None,
    *,
    healthy: bool = True,
    note: str = "",
    offline_requests: int = 0,
    instance_types: tuple[InstanceShape, ...] = (),
) -> SiteSpec:
    """The planner's view of a configured site.

    ``learned``: attributes (name -> ClassAd text) of the latest real pilot ad at the site
    (``pool.base.latest_by_site``); ``health``: from :func:`site_health_of`; ``healthy``/``note``:
    whether the site answered this cycle; ``offline_requests``: the negotiator's recent matches
    of the site's offline ad (``pool.offline.offline_requests``); ``instance_types``: the shapes of
    a cloud site's ``cloud.instance_types`` as read (its slot is then the largest of them per
    resource, which learned ads do not change).
    """
    use = learned if (learned and site.slot.learn) else None
    cpus, mem, gpus = learned_resources(site, use)
    disk = site.slot.disk_mb
    if instance_types:
        cpus, mem, disk, gpus = largest(instance_types)
    elif site.cloud.instance_types and site.provider in SIZED_CLOUD_PROVIDERS:  # nothing to choose from yet
        healthy, note = False, note or "the shapes of its cloud.instance_types are not known yet"
    ad = build_slot_ad(site.name, cpus, mem, disk, gpus, site.walltime, slot_policy(site), use)
    return SiteSpec(
        name=site.name,
        cpus=cpus,
        memory_mb=mem,
        disk_mb=disk,
        gpus=gpus,
        max_pilots=site.limits.max_pilots,
        max_queued=site.limits.max_queued,
        max_submit_per_cycle=site.limits.max_submit_per_cycle,
        max_cores=site.limits.max_cores,
        walltime_s=site.walltime,
        retire_margin_s=min(site.batch.term_margin, site.walltime / 2),
        idle_timeout_s=site.idle_timeout,
        enabled=site.enabled,
        healthy=healthy,
        health_note=note,
        slot_ad=ad,
        rank=site.rank,
        cost_per_core_hour=site.cost_per_core_hour,
        floor=site.limits.floor,
        ceiling=site.limits.ceiling,
        job_runtime_s=site.job_runtime,
        health=health,
        offline_requests=offline_requests,
        sizing=site.sizing,
        instance_types=instance_types,
    )


def site_specs(
    sites: Iterable[SiteConfig],
    *,
    learned: Mapping[str, Mapping[str, str]] | None = None,
    health: Mapping[str, SiteHealth] | None = None,
    unhealthy: Mapping[str, str] | None = None,
    offline: Mapping[str, int] | None = None,
    instance_types: Mapping[str, tuple[InstanceShape, ...]] | None = None,
) -> list[SiteSpec]:
    """:func:`site_spec` for every site, in config order; maps are keyed by site name.

    ``unhealthy`` maps sites that failed to answer this cycle to a short note.
    """
    types = instance_types or {}
    learned, health, unhealthy, offline = learned or {}, health or {}, unhealthy or {}, offline or {}
    return [
        site_spec(
            s,
            learned.get(s.name),
            health.get(s.name),
            healthy=s.name not in unhealthy,
            note=unhealthy.get(s.name, ""),
            offline_requests=offline.get(s.name, 0),
            instance_types=types.get(s.name, ()),
        )
        for s in sites
    ]


def health_settings(site: SiteConfig, *, joins_observed: bool) -> HealthSettings:
    """Isolation settings of a site; black-hole checks need the pool to be observed."""
    iso = site.isolation
    return HealthSettings(
        backoff_base_s=iso.backoff_base,
        backoff_max_s=iso.backoff_max,
        backoff_after=iso.backoff_after,
        early_death_s=iso.early_death,
        join_timeout_s=iso.join_timeout if joins_observed else None,
        black_hole_after=iso.black_hole_after,
        window_s=iso.window,
    )


def site_health_of(
    site: SiteConfig, history: Iterable[PilotHistory], now: float, *, joins_observed: bool
) -> SiteHealth:
    """:func:`site_health` of a configured site from its recent ledger records."""
    return site_health(outcomes(history), now, health_settings(site, joins_observed=joins_observed))


def pilot_views(
    records: Iterable[PilotRecordLike],
    slots: Mapping[str, SlotLike] | None = None,
    *,
    retire_margin_s: float = 0.0,
) -> list[PilotView]:
    """Planner views of live pilots, with their free resources when the pool was observed.

    ``slots`` maps pilot ids to their partitionable slot; None means the pool was not asked
    (busy unknown). A pilot absent from an observed pool is reported with ``busy=None``.
    """
    out = []
    for r in records:
        slot = slots.get(r.pilot_id) if slots is not None else None
        retire = r.started_at + r.walltime_s - retire_margin_s if r.started_at is not None else None
        size = (r.cpus, r.memory_mb, r.disk_mb, r.gpus)
        if slot is None:
            out.append(
                PilotView(
                    r.pilot_id,
                    r.site,
                    str(r.state),
                    r.state_since,
                    None,
                    r.job_id is not None,
                    None,
                    None,
                    None,
                    None,
                    retire,
                    *size,
                )
            )
            continue
        out.append(
            PilotView(
                r.pilot_id,
                r.site,
                str(r.state),
                r.state_since,
                slot.busy,
                r.job_id is not None,
                slot.free_cpus,
                slot.free_memory_mb,
                slot.free_disk_mb,
                slot.free_gpus,
                retire,
                *size,
            )
        )
    return out
