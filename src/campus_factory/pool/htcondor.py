"""The pool's view from a real collector, through ``htcondor2`` (tested against a personal pool).

Kept small: one query for our pilots' partitionable slots; conversion is :func:`slot_from_ad`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..classads import literal
from ..config import PoolOptions
from ..errors import PoolError
from .base import PilotSlot, slot_from_ad

__all__ = ["HTCondorJobs", "HTCondorPool", "RunningJob", "jobs_constraint", "pilot_constraint", "running_job"]


def pilot_constraint(factory: str) -> str:
    """Startd ads of this factory's pilots (partitionable slots only)."""
    return (
        f"CampusFactoryName == {literal(factory)} && CampusFactoryPilotId =!= undefined && PartitionableSlot =?= true"
    )


class HTCondorPool:
    """Reads this factory's pilot slots from the pool's collector on each call."""

    def __init__(self, pool: PoolOptions, factory: str) -> None:
        self.pool = pool
        self.factory = factory

    def pilot_slots(self) -> list[PilotSlot]:
        import htcondor2

        try:
            collector = htcondor2.Collector(self.pool.collector)
            ads = collector.query(htcondor2.AdType.Startd, constraint=pilot_constraint(self.factory))
        except Exception as exc:
            raise PoolError(f"cannot query pilot slots at {self.pool.collector}: {exc}") from exc
        now = time.time()
        return [s for s in (slot_from_ad(ad, now) for ad in ads) if s is not None]


@dataclass(frozen=True)
class RunningJob:
    """A job running on one of our pilots, from its dynamic slot ad."""

    pilot_id: str
    job_id: str
    owner: str
    route: str
    started_at: float
    cpus: int


def jobs_constraint(factory: str) -> str:
    return f"CampusFactoryName == {literal(factory)} && DynamicSlot =?= true && GlobalJobId =!= undefined"


def running_job(ad: object) -> RunningJob | None:
    """A :class:`RunningJob` from a dynamic slot ad (a mapping-like ClassAd), None if incomplete."""
    get = getattr(ad, "get", None)
    if get is None:
        return None
    pilot, gid, start = get("CampusFactoryPilotId"), get("GlobalJobId"), get("JobStart")
    if not isinstance(pilot, str) or not isinstance(gid, str) or not isinstance(start, int | float):
        return None
    owner = get("RemoteOwner") or get("RemoteUser") or ""
    route = get("CampusFactoryRoute") or "transparent"
    cpus = get("Cpus")
    return RunningJob(
        pilot_id=pilot,
        job_id=gid,
        owner=str(owner).split("@", 1)[0],
        route=str(route),
        started_at=float(start),
        cpus=int(cpus) if isinstance(cpus, int) and not isinstance(cpus, bool) else 1,
    )


class HTCondorJobs:
    """Reads the jobs running on this factory's pilots (their dynamic slots)."""

    def __init__(self, pool: PoolOptions, factory: str) -> None:
        self.pool = pool
        self.factory = factory

    def running_jobs(self) -> list[RunningJob]:
        import htcondor2

        try:
            collector = htcondor2.Collector(self.pool.collector)
            ads = collector.query(
                htcondor2.AdType.Startd,
                constraint=jobs_constraint(self.factory),
                projection=[
                    "CampusFactoryPilotId",
                    "GlobalJobId",
                    "JobStart",
                    "RemoteOwner",
                    "RemoteUser",
                    "CampusFactoryRoute",
                    "Cpus",
                ],
            )
        except Exception as exc:
            raise PoolError(f"cannot query jobs on pilots at {self.pool.collector}: {exc}") from exc
        return [j for j in (running_job(ad) for ad in ads) if j is not None]
