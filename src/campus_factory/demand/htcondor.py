"""Demand from HTCondor schedds, through the ``htcondor2`` bindings.

Idle jobs (``JobStatus == 1``) of every configured schedd (or every schedd the collector
knows) are grouped by the attributes a matchmaker looks at: owner, requested cpus, memory,
disk, GPUs, the Requirements expression and the job's own attributes it refers to (such as
``DiskUsage`` or ``MY.FileSystemDomain``), like the schedd's autoclusters. A first query reads a
small projection; when Requirements refer to attributes outside it, a second query fetches them.

A schedd that does not answer, or is missing from the collector for a moment, is a failed
observation, not an empty queue: its idle jobs of the last good read stand in for up to
:data:`STALE_S` seconds (with a warning each cycle), so one slow schedd does not make the
planner cancel the pilots queued for its jobs. After that its jobs count as gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..classads import MAX_TEXT_CHARS
from ..config import PoolOptions
from ..domain import JobGroup, group_id_for
from ..errors import DemandError
from .bounds import MAX_ATTRIBUTES, bounded_attribute, bounded_int, bounded_text

__all__ = ["STALE_S", "HTCondorDemand", "group_job_ads"]

#: how long a schedd's last good idle jobs stand in while it does not answer
STALE_S = 300.0

log = logging.getLogger(__name__)

PROJECTION = [
    "ClusterId",
    "ProcId",
    "Owner",
    "RequestCpus",
    "RequestMemory",
    "RequestDisk",
    "RequestGPUs",
    "Requirements",
    "CampusFactoryRoute",
    "WantCloud",
    "DiskUsage",
    "FileSystemDomain",
    "AcctGroup",
    "AccountingGroup",
]
#: attributes the JobGroup models itself (not copied into ``attributes``)
_MODELED = frozenset(
    a.lower() for a in ("ClusterId", "ProcId", "Owner", "RequestCpus", "RequestMemory", "RequestGPUs", "Requirements")
)
#: always kept when present: routes and what site START policies commonly look at
_ALWAYS = ("CampusFactoryRoute", "WantCloud", "AcctGroup", "AccountingGroup")


def referenced(ad: Any) -> set[str]:
    """The job's own attributes its Requirements refer to (directly or through other attributes)."""
    try:  # lookup does not decode: a non-UTF-8 value must not fail the whole schedd's query
        req = ad.lookup("Requirements")
    except Exception:
        return set()
    names = set(ad.internalRefs(req))
    names |= {r[3:] for r in ad.externalRefs(req) if r.lower().startswith("my.")}
    return {n for n in names if n and n.lower() not in _MODELED}


def _num(ad: Any, name: str, default: float) -> float:
    try:
        value = ad.eval(name)
    except Exception:  # an attribute that does not evaluate counts as absent
        return default
    import classad2

    if isinstance(value, bool | classad2.Value) or not isinstance(value, int | float):
        return default  # Undefined and Error are IntEnum members: not numbers
    return float(value)


def _check_bounds(
    job: str, owner: str, numbers: tuple[int, int, int, int], requirements: str, attributes: dict[str, str]
) -> None:
    """The demand edge's bounds (:mod:`.bounds`), as for a demand file: DemandError when beyond."""
    where = f"job {job[:100]}"
    bounded_text(owner, "Owner", where)
    for field_name, number in zip(("cpus", "memory_mb", "disk_mb", "gpus"), numbers, strict=True):
        bounded_int(number, field_name, where)
    bounded_text(requirements, "Requirements", where, MAX_TEXT_CHARS)
    if len(attributes) > MAX_ATTRIBUTES:
        raise DemandError(f"{where}: {len(attributes)} attributes, at most {MAX_ATTRIBUTES}")
    for name, value in attributes.items():
        bounded_attribute(name, value, where)


@dataclass
class _Acc:
    first: JobGroup
    jobs: list[str] = field(default_factory=list)


def group_job_ads(ads: Iterable[Any], schedd: str) -> list[JobGroup]:
    """Group job ads (``classad2.ClassAd``) into :class:`JobGroup` values."""
    groups: dict[str, _Acc] = {}
    for ad in ads:
        try:
            owner = str(ad.get("Owner", ""))
            cpus = max(1, int(_num(ad, "RequestCpus", 1)))
            memory = max(0, int(_num(ad, "RequestMemory", 1024)))
            disk = max(0, int(_num(ad, "RequestDisk", 1024 * 1024) / 1024))  # KiB -> MiB
            gpus = max(0, int(_num(ad, "RequestGPUs", 0)))
            # ClassAd text, as for attributes: a string literal stays quoted (a str() of ad.get()
            # would paste its content, e.g. 'true; Owner = "alice"', into the planner's job ad)
            requirements = str(ad.lookup("Requirements")) if "Requirements" in ad else "true"
            names = referenced(ad) | {k for k in _ALWAYS if k in ad}
            attributes = {k: str(ad.lookup(k)) for k in sorted(names) if k in ad}
            job = f"{ad.get('ClusterId', '?')}.{ad.get('ProcId', '?')}"
            _check_bounds(job, owner, (cpus, memory, disk, gpus), requirements, attributes)
        except Exception as exc:  # a malformed ad is skipped, never fatal
            log.warning("%s: skipping a malformed job ad: %s", schedd, exc)
            continue
        key = group_id_for(schedd, owner, cpus, memory, disk, gpus, requirements, sorted(attributes.items()))
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = _Acc(
                JobGroup(key, 0, cpus, memory, disk, gpus, owner, requirements, attributes, schedd)
            )
        acc.jobs.append(job)
    return [JobGroup(**{**a.first.__dict__, "count": len(a.jobs), "jobs": tuple(a.jobs)}) for a in groups.values()]


class HTCondorDemand:
    """Reads idle jobs from the pool's schedds on each call."""

    def __init__(self, pool: PoolOptions, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.clock = clock
        self._last: dict[str, tuple[float, list[JobGroup]]] = {}  # schedd -> (read at, its groups)

    def _schedds(self) -> list[Any]:
        import htcondor2

        collector = htcondor2.Collector(self.pool.collector)
        ads = collector.locateAll(htcondor2.DaemonType.Schedd)
        if self.pool.schedds:
            wanted = set(self.pool.schedds)
            ads = [a for a in ads if a.get("Name") in wanted]
            missing = wanted - {a.get("Name") for a in ads}
            if missing:
                log.warning("schedds not found in the collector: %s", ", ".join(sorted(missing)))
        return list(ads)

    def idle_groups(self) -> list[JobGroup]:
        import htcondor2

        try:
            schedd_ads = self._schedds()
        except Exception as exc:
            raise DemandError(f"cannot list schedds at {self.pool.collector}: {exc}") from exc
        constraint = f"JobStatus == 1 && ({self.pool.job_constraint})"
        now = self.clock()
        out: list[JobGroup] = []
        read: set[str] = set()
        for sad in schedd_ads:
            name = str(sad.get("Name", "?"))
            try:
                schedd = htcondor2.Schedd(sad)
                ads = schedd.query(constraint=constraint, projection=PROJECTION)
                wanted = {p.lower() for p in PROJECTION}
                more = sorted({n for ad in ads for n in referenced(ad) if n.lower() not in wanted})
                if more:
                    ads = schedd.query(constraint=constraint, projection=PROJECTION + more)
            except Exception as exc:
                log.warning("schedd %s: cannot read idle jobs: %s", name, exc)
                continue
            groups = group_job_ads(ads, name)
            self._last[name] = (now, groups)
            read.add(name)
            out.extend(groups)
        for name, (at, groups) in sorted(self._last.items()):
            if name in read:
                continue
            if now - at > STALE_S:
                log.warning("schedd %s: no answer for %.0f s, its idle jobs count as gone", name, now - at)
                del self._last[name]
                continue
            log.warning("schedd %s: using its idle jobs read %.0f s ago", name, now - at)
            out.extend(groups)
        return out
