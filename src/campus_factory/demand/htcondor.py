"""Demand from HTCondor schedds, through the ``htcondor2`` bindings.

Idle jobs (``JobStatus == 1``) of every configured schedd (or every schedd the collector
knows) are grouped by the attributes a matchmaker looks at: owner, requested cpus, memory,
disk, GPUs and the Requirements expression, like the schedd's autoclusters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..config import PoolOptions
from ..errors import DemandError
from .base import JobGroup, group_id_for

__all__ = ["HTCondorDemand", "group_job_ads"]

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
]


def _num(ad: Any, name: str, default: float) -> float:
    try:
        value = ad.eval(name)
    except Exception:  # an attribute that does not evaluate counts as absent
        return default
    import classad2

    if isinstance(value, bool | classad2.Value) or not isinstance(value, int | float):
        return default  # Undefined and Error are IntEnum members: not numbers
    return float(value)


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
            req = ad.get("Requirements")
            requirements = str(req) if req is not None else "true"
            attributes = {k: str(ad.lookup(k)) for k in ("CampusFactoryRoute", "WantCloud") if k in ad}
            job = f"{ad.get('ClusterId', '?')}.{ad.get('ProcId', '?')}"
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

    def __init__(self, pool: PoolOptions) -> None:
        self.pool = pool

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
        out: list[JobGroup] = []
        for sad in schedd_ads:
            name = str(sad.get("Name", "?"))
            try:
                ads = htcondor2.Schedd(sad).query(constraint=constraint, projection=PROJECTION)
            except Exception as exc:
                log.warning("schedd %s: cannot read idle jobs: %s", name, exc)
                continue
            out.extend(group_job_ads(ads, name))
        return out
