"""The pool's view from a real collector, through ``htcondor2`` (tested against a personal pool).

Kept small: one query for our pilots' partitionable slots; conversion is :func:`slot_from_ad`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..classads import literal
from ..config import PoolOptions
from ..errors import PoolError
from .base import PilotSlot, slot_from_ad

log = logging.getLogger(__name__)

__all__ = [
    "HISTORY_PROJECTION",
    "FinishedRun",
    "HTCondorJobs",
    "HTCondorPool",
    "RunKey",
    "RunningJob",
    "finished_run",
    "jobs_constraint",
    "pilot_constraint",
    "pilot_of_host",
    "run_end",
    "running_job",
]

#: a job run: (pilot id, GlobalJobId, start time)
RunKey = tuple[str, str, float]
HISTORY_PROJECTION = [
    "GlobalJobId",
    "CompletionDate",
    "EnteredCurrentStatus",
    "LastVacateTime",
    "JobStatus",
    "JobCurrentStartDate",
]
_RUNNING = 2
#: what a finished job's history ad must tell to be a run on one of our pilots
FINISHED_PROJECTION = [
    *HISTORY_PROJECTION,
    "LastRemoteHost",
    "Owner",
    "CpusProvisioned",
    "RequestCpus",
    "CampusFactoryRoute",
]
#: the most finished jobs read from one schedd's history per cycle
MAX_FINISHED_PER_SCHEDD = 10_000
#: history records are appended when a job leaves the queue, a little after its status changed
HISTORY_SLACK_S = 300.0
_GLIDEIN = "glidein-"  # the startd name prefix of our pilots (pilot/glidein.py STARTD_NAME)


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


def _time(ad: object, name: str) -> float | None:
    get = getattr(ad, "get", None)
    value = get(name) if get is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def run_end(ad: object | None, started_at: float) -> float | bool | None:
    """When the run that began at ``started_at`` ended, from its job ad (history or queue):
    the completion date, or the last vacate (evicted), or when it left the running state; False
    when the ad says it still runs there; None when the ad says nothing usable."""
    if ad is None:
        return None
    get = getattr(ad, "get", None)
    status = get("JobStatus") if get is not None else None
    start = _time(ad, "JobCurrentStartDate")
    if status == _RUNNING and start is not None and abs(start - started_at) < 1:
        return False  # the slot was missed by the collector query: the run goes on
    for name in ("CompletionDate", "LastVacateTime", "EnteredCurrentStatus"):
        t = _time(ad, name)
        if t is not None and t >= started_at:
            return t
    return None


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

    def run_ends(self, runs: list[RunKey]) -> dict[RunKey, float | bool | None]:
        """When runs no longer seen on our pilots ended, from their schedds' job ads: history
        first (``condor_history``), then the queue (an evicted job waits there again). A run whose
        ad still shows it running maps to False; a run whose schedd did not answer maps to None
        (ask again); runs nobody can tell about are left out."""
        import htcondor2

        by_schedd: dict[str, list[RunKey]] = {}
        for key in runs:
            by_schedd.setdefault(key[1].split("#", 1)[0], []).append(key)
        out: dict[RunKey, float | bool | None] = {}
        for name, keys in sorted(by_schedd.items()):
            gids = sorted({k[1] for k in keys})
            constraint = " || ".join(f"GlobalJobId == {literal(g)}" for g in gids)
            try:
                located = htcondor2.Collector(self.pool.collector).locate(htcondor2.DaemonType.Schedd, name)
                schedd = htcondor2.Schedd(located)
                ads = {str(a.get("GlobalJobId")): a for a in schedd.history(constraint, HISTORY_PROJECTION, len(gids))}
                for a in schedd.query(constraint, HISTORY_PROJECTION):
                    ads.setdefault(str(a.get("GlobalJobId")), a)
            except Exception as exc:  # a schedd that does not answer now may answer next cycle
                log.warning("cannot read the job history of schedd %s: %s", name, exc)
                out.update((k, None) for k in keys)
                continue
            for key in keys:
                end = run_end(ads.get(key[1]), key[2])
                if end is not None:
                    out[key] = end
        return out

    def finished_runs(self, since: float) -> list[FinishedRun]:
        """Runs on glideins that ended at or after ``since``, from the history of every schedd
        in the pool's collector (bounded per schedd); a schedd that does not answer is skipped
        with a warning, as its runs are found again at the next call with an older ``since``."""
        import htcondor2

        lo = since - HISTORY_SLACK_S  # a job that ended just before, written to the history since
        constraint = f"CompletionDate >= {lo:.0f} || EnteredCurrentStatus >= {lo:.0f}"
        stop = f"EnteredCurrentStatus < {lo - HISTORY_SLACK_S:.0f}"
        try:
            schedds = htcondor2.Collector(self.pool.collector).locateAll(htcondor2.DaemonType.Schedd)
        except Exception as exc:
            raise PoolError(f"cannot list schedds at {self.pool.collector}: {exc}") from exc
        out: list[FinishedRun] = []
        for located in schedds:
            name = located.get("Name", "?")
            try:
                ads = htcondor2.Schedd(located).history(
                    f"LastRemoteHost =!= undefined && ({constraint})",
                    FINISHED_PROJECTION,
                    MAX_FINISHED_PER_SCHEDD,
                    since=stop,
                )
            except Exception as exc:
                log.warning("cannot read the job history of schedd %s: %s", name, exc)
                continue
            if len(ads) >= MAX_FINISHED_PER_SCHEDD:
                log.warning("schedd %s: more than %d jobs finished since the last look", name, len(ads))
            out.extend(r for r in (finished_run(a) for a in ads) if r is not None)
        return out


@dataclass(frozen=True)
class FinishedRun:
    """A job's last run on one of our pilots, from its schedd's history (it may never have been
    seen running: it began and ended between two looks, or while the factory was down)."""

    job: RunningJob
    ended_at: float


def pilot_of_host(host: object) -> str | None:
    """The pilot id in a slot name ``slot1_1@glidein-<pilot id>[@host]``, else None."""
    if not isinstance(host, str) or len(host) > 1024:
        return None
    for part in host.split("@")[1:]:
        if part.startswith(_GLIDEIN) and len(part) > len(_GLIDEIN):
            return part[len(_GLIDEIN) :]
    return None


def finished_run(ad: object) -> FinishedRun | None:
    """A :class:`FinishedRun` from a history ad of a job that ran on a glidein, else None."""
    get = getattr(ad, "get", None)
    if get is None:
        return None
    pilot, gid, start = pilot_of_host(get("LastRemoteHost")), get("GlobalJobId"), _time(ad, "JobCurrentStartDate")
    if pilot is None or not isinstance(gid, str) or start is None or get("JobStatus") == _RUNNING:
        return None
    end = run_end(ad, start)
    if not isinstance(end, float) or end - start > 366 * 86400.0:
        return None
    cpus = get("CpusProvisioned")
    if not isinstance(cpus, int) or isinstance(cpus, bool):
        cpus = get("RequestCpus")
    owner, route = get("Owner"), get("CampusFactoryRoute")
    job = RunningJob(
        pilot_id=pilot,
        job_id=gid,
        owner=owner.split("@", 1)[0] if isinstance(owner, str) else "",
        route=route if isinstance(route, str) and route else "transparent",
        started_at=start,
        cpus=cpus if isinstance(cpus, int) and not isinstance(cpus, bool) and 0 < cpus <= 100_000 else 1,
    )
    return FinishedRun(job, end)
