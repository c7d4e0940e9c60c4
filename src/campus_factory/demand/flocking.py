"""Demand from the schedds of campus pools that flock to this pool (the Campus Grid Factory).

The campus schedds are configured with ``FLOCK_TO`` = this pool's collector: jobs their own
pool does not match are offered to this pool's negotiator, and run on our pilots. The factory
reads those schedds' idle jobs (through the campus pool's collector, ``pool.flock_from``) and
must start pilots only for jobs the campus pool cannot serve. It tells them apart the way
``condor_q -better-analyze`` does: each job group is matched against the campus pool's own slot
ads, taken **as if empty** (a partitionable slot with all of its ``TotalSlot*`` resources; dynamic
slots and offline ads left out). A group some campus slot could run is left to the campus pool:
its jobs wait for a campus slot, and the schedd runs them there, so no pilot is started for them
even if the schedd flocks them while it waits. With ``wait_for_campus`` set, such a job idle for
longer than that counts as demand too (the campus is full). Groups no campus slot could run are
the flocked demand, planned like any other.

The split is a pure function of plain data (:func:`campus_factory.demand.campus.split_for_flocking`);
:class:`FlockedDemand` does the queries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import FlockSource, PoolOptions
from ..domain import JobGroup
from ..errors import DemandError
from .base import DemandSource
from .campus import CampusSlot, FlockSplit, campus_slot, group_with, shape_signature, slot_job_refs, split_for_flocking
from .htcondor import PROJECTION, HTCondorDemand, referenced

__all__ = ["MAX_SHAPES", "CombinedDemand", "FlockedDemand", "pool_demand"]

log = logging.getLogger(__name__)

#: the most distinct slot shapes matched per campus pool (a cycle stays bounded on large pools)
MAX_SHAPES = 2000
#: when a job became idle, in order of preference
IDLE_SINCE = ("EnteredCurrentStatus", "QDate")


def _ad_text(ad: Any) -> dict[str, str]:
    out = {}
    for k in ad:
        try:
            out[str(k)] = str(ad.lookup(k))
        except Exception:  # noqa: S112  # an undecodable value: the attribute is left out
            continue
    return out


@dataclass
class _Source:
    src: FlockSource
    cache: dict[tuple[str, str], str | None] = field(default_factory=dict)
    last: FlockSplit = field(default_factory=FlockSplit)


class FlockedDemand:
    """Idle jobs of the campus schedds (``pool.flock_from``) that no campus slot could run."""

    def __init__(self, pool: PoolOptions, clock: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.clock = clock
        self.sources = [_Source(s) for s in pool.flock_from]

    def campus_slots(self, src: FlockSource) -> list[CampusSlot]:
        """The campus pool's slots, one per shape, as if empty."""
        import htcondor2

        try:
            ads = htcondor2.Collector(src.collector).query(htcondor2.AdType.Startd, constraint="DynamicSlot =!= true")
        except Exception as exc:
            raise DemandError(f"campus pool {src.name}: cannot read slot ads at {src.collector}: {exc}") from exc
        shapes: dict[str, CampusSlot] = {}
        for ad in ads:
            attrs = _ad_text(ad)
            sig = shape_signature(attrs)
            if sig in shapes:
                continue
            slot = campus_slot(attrs)
            if slot is not None:
                shapes[sig] = slot
                if len(shapes) >= MAX_SHAPES:
                    log.warning("campus pool %s: more than %d slot shapes; matching the first", src.name, MAX_SHAPES)
                    break
        return list(shapes.values())

    def idle_jobs(self, src: FlockSource, extra: Sequence[str] = ()) -> tuple[list[JobGroup], dict[str, float]]:
        """The idle job groups of the source's schedds (keeping the ``extra`` job attributes),
        and when each job became idle."""
        import htcondor2

        try:
            located = htcondor2.Collector(src.collector).locateAll(htcondor2.DaemonType.Schedd)
        except Exception as exc:
            raise DemandError(f"campus pool {src.name}: cannot list schedds at {src.collector}: {exc}") from exc
        by_name = {str(a.get("Name")): a for a in located}
        missing = [s for s in src.schedds if s not in by_name]
        if missing:
            log.warning("campus pool %s: schedds not in its collector: %s", src.name, ", ".join(missing))
        constraint = f"JobStatus == 1 && ({self.pool.job_constraint})"
        groups: list[JobGroup] = []
        idle_since: dict[str, float] = {}
        for name in (s for s in src.schedds if s in by_name):
            try:
                schedd = htcondor2.Schedd(by_name[name])
                base = {p.lower() for p in PROJECTION}
                projection = PROJECTION + list(IDLE_SINCE) + [n for n in extra if n.lower() not in base]
                ads = list(schedd.query(constraint=constraint, projection=projection))
                wanted = {p.lower() for p in projection}
                more = sorted({n for ad in ads for n in referenced(ad) if n.lower() not in wanted})
                if more:
                    ads = list(schedd.query(constraint=constraint, projection=projection + more))
            except Exception as exc:
                log.warning("campus schedd %s (%s): cannot read idle jobs: %s", name, src.name, exc)
                continue
            for ad in ads:
                since = next((v for k in IDLE_SINCE if isinstance(v := ad.get(k), int | float)), None)
                if since is not None and not isinstance(since, bool):
                    idle_since[f"{ad.get('ClusterId', '?')}.{ad.get('ProcId', '?')}"] = float(since)
            groups.extend(group_with(ads, name, extra))
        return groups, idle_since

    def idle_groups(self) -> list[JobGroup]:
        out: list[JobGroup] = []
        for s in self.sources:
            slots = self.campus_slots(s.src)
            groups, idle_since = self.idle_jobs(s.src, sorted(slot_job_refs(slots)))
            s.last = split_for_flocking(
                groups,
                slots,
                idle_since=idle_since,
                wait_for_campus=s.src.wait_for_campus,
                now=self.clock(),
                cache=s.cache,
            )
            if len(s.cache) > 50_000:
                s.cache.clear()
            for error in s.last.errors:
                log.warning("campus pool %s: %s", s.src.name, error)
            if s.last.campus:
                log.info(
                    "campus pool %s: %d idle job(s) in %d group(s) left to its %d slot shape(s); %d flocked",
                    s.src.name,
                    s.last.left_to_campus,
                    len(s.last.campus),
                    len(slots),
                    sum(g.count for g in s.last.flocking),
                )
            out.extend(s.last.flocking)
        return out


class CombinedDemand:
    """This pool's own demand and the flocked demand; a failing read fails the whole read (no
    pilots are started or cancelled on half the demand). Groups of the campus schedds that this
    pool's collector lists too come only through ``flocked`` (filtered by the campus match)."""

    def __init__(self, local: DemandSource, flocked: FlockedDemand) -> None:
        self.local = local
        self.flocked = flocked
        self.campus_schedds = {name for s in flocked.sources for name in s.src.schedds}

    def idle_groups(self) -> list[JobGroup]:
        own = [g for g in self.local.idle_groups() if g.schedd not in self.campus_schedds]
        return own + self.flocked.idle_groups()


def pool_demand(pool: PoolOptions) -> DemandSource:
    """The demand of the pool's own schedds, and of the campus schedds that flock to it."""
    own = HTCondorDemand(pool)
    return CombinedDemand(own, FlockedDemand(pool)) if pool.flock_from else own
