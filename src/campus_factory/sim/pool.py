"""A simulated HTCondor pool: idle jobs, pilots' partitionable slots, negotiation, runtimes.

Jobs with the same significant attributes form one group (an autocluster); the factory reads
them as :class:`JobGroup` through :meth:`SimPool.idle_groups` and the pilots' slots through
:meth:`SimPool.pilot_slots` (the ``PoolView`` contract).

Which groups a site's pilots can run is the real ClassAd library's answer, once per (group,
site) pair (:mod:`.matching`); claiming checks the free cpus, memory, disk and GPUs of a pilot's
partitionable slot numerically (so a Requirements clause on Memory is judged against the whole
pilot, a simplification). A negotiation runs every ``negotiator_interval`` when something changed; a
finishing job's claim is reused at once for the next idle job of its group (claim reuse).

A pilot of a site sizing pilots to demand (``sizing = "fit"``) takes only jobs of at least its
cores, as the factory's glidein START says (the slot ad, the largest pilot, has no such clause;
the baselines' whole-slot glideins have none either: ``fill_only=False``). A pilot stops
accepting jobs at its retire time (walltime end minus the pilot retire margin) and its startd
leaves when idle that long and drained, or after ``idle_timeout`` without a job.

The pool also tells the loop's job tracker (``sim.loop``) the jobs running on pilots (GlobalJobId
``sim#<job>.0#0``) and when runs ended, so the ledger records job runs, with their job group
(:meth:`SimPool.group_of`), and the loop learns runtimes from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from ..config import SiteConfig
from ..domain import JobGroup, group_id_for
from ..pool.base import PilotSlot
from ..pool.htcondor import RunningJob
from .ads import slot_ad_attributes
from .matching import Matcher, SimGroup
from .workloads import JobSpec

__all__ = ["JobRun", "SimGroup", "SimJob", "SimPilot", "SimPool", "slot_ad_attributes"]

Schedule = Callable[[float, Callable[[], None]], None]


def _gid(idx: int) -> str:
    return f"sim#{idx}.0#0"


@dataclass(eq=False)
class SimJob:
    idx: int
    spec: JobSpec
    group: SimGroup
    submit_at: float
    first_start: float | None = None
    end_at: float | None = None
    pilot: SimPilot | None = None
    run_start: float = 0.0
    attempt: int = 0
    evictions: int = 0
    listed: int = 0  # the last listing for the loop (:meth:`SimPool.jobs_on_pilots`) of this run; 0: none


@dataclass(eq=False)
class SimPilot:
    pilot_id: str
    site: str
    job_id: str
    cpus: int
    memory_mb: int
    disk_mb: int
    gpus: int
    joined_at: float
    retire_at: float
    free_cpus: int = 0
    free_memory_mb: int = 0
    free_disk_mb: int = 0
    free_gpus: int = 0
    running: set[SimJob] = field(default_factory=set)
    idle_since: float | None = None
    accepting: bool = True
    fill_only: bool = False  # sized for one job: takes only jobs of at least its cores (its START)

    def fits(self, s: JobSpec) -> int:
        """How many jobs of this shape the free part of the slot holds."""
        if self.fill_only and s.cpus < self.cpus:
            return 0
        n = self.free_cpus // max(1, s.cpus)
        if s.memory_mb > 0:
            n = min(n, self.free_memory_mb // s.memory_mb)
        if s.disk_mb > 0:
            n = min(n, self.free_disk_mb // s.disk_mb)
        if s.gpus > 0:
            n = min(n, self.free_gpus // s.gpus)
        return max(0, n)


@dataclass(frozen=True)
class JobRun:
    """One run of a job on a pilot; ``completed`` False when it was evicted."""

    job: int
    pilot_id: str
    site: str
    start: float
    end: float
    cpus: int
    completed: bool


class SimPool:
    """Jobs and pilots' slots on the simulated clock."""

    def __init__(
        self,
        sites: Iterable[SiteConfig],
        *,
        clock: Callable[[], float],
        schedule: Schedule,
        on_exit: Callable[[SimPilot], None],
        retire_margin_s: float = 600.0,
        fill_only: bool = True,
    ) -> None:
        self.sites = {s.name: s for s in sites}
        #: whether pilots of fit sites carry the factory's START clause (the baselines' glideins do not)
        self.fill_only = fill_only
        self.clock = clock
        self.schedule = schedule
        self.on_exit = on_exit
        self.retire_margin_s = retire_margin_s
        self.jobs: list[SimJob] = []
        self.groups: dict[tuple[object, ...], SimGroup] = {}
        self.pilots: dict[str, SimPilot] = {}
        self.runs: list[JobRun] = []
        self.busy_core_s: dict[str, float] = {}
        self.dirty = False
        self.running_jobs = 0
        self.idle_jobs = 0
        self.completed = 0
        self.withdrawn = 0
        self.negotiations = 0
        #: which groups each site's pilots can run
        self.matcher = Matcher(self.sites)
        self._free: dict[str, dict[str, SimPilot]] = {name: {} for name in self.sites}
        #: ends of runs the loop saw, with their last listing, until it asks (at the next listing)
        self._ended: dict[tuple[str, str, float], tuple[float, int]] = {}
        self._listings = 0

    # -- jobs ---------------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> SimJob:
        key = (spec.cpus, spec.memory_mb, spec.disk_mb, spec.gpus, spec.owner, spec.requirements, spec.attributes)
        group = self.groups.get(key)
        if group is None:
            gid = group_id_for(*key)
            template = JobGroup(
                gid,
                0,
                cpus=spec.cpus,
                memory_mb=spec.memory_mb,
                disk_mb=spec.disk_mb,
                gpus=spec.gpus,
                owner=spec.owner,
                requirements=spec.requirements,
                attributes=dict(spec.attributes),
                schedd="sim",
            )
            group = self.groups[key] = SimGroup(gid, template)
        job = SimJob(len(self.jobs), spec, group, self.clock())
        self.jobs.append(job)
        group.idle.append(job)
        self.idle_jobs += 1
        self.dirty = True
        return job

    def idle_groups(self) -> list[JobGroup]:
        """Idle jobs as job groups (the factory's demand)."""
        return [replace(g.template, count=len(g.idle)) for g in self.groups.values() if g.idle]

    # -- matching (:attr:`matcher`) --------------------------------------------------------------
    def withdraw_unrunnable(self) -> int:
        """Remove idle jobs that match no site from the queue (as their owners would)."""
        n = 0
        for g in self.groups.values():
            if g.idle and not self.matcher.runnable_anywhere(g):
                n += len(g.idle)
                self.withdrawn += len(g.idle)
                g.idle.clear()
        self.idle_jobs -= n
        return n

    # -- pilots -------------------------------------------------------------------------------
    def join(
        self, pilot_id: str, site: str, job_id: str, end_at: float, size: tuple[int, int, int, int] | None = None
    ) -> SimPilot:
        """A pilot's startd joins with ``size`` (cpus, memory MB, disk MB, GPUs; None: the site's slot)."""
        cfg = self.sites[site].slot
        cpus, memory, disk, gpus = size if size is not None else (cfg.cpus, cfg.memory_mb, cfg.disk_mb, cfg.gpus)
        now = self.clock()
        retire = max(now, end_at - self.retire_margin_s)
        p = SimPilot(pilot_id, site, job_id, cpus, memory, disk, gpus, now, retire)
        p.fill_only = self.fill_only and self.sites[site].sizing == "fit" and not self.sites[site].cloud.instance_types
        p.free_cpus, p.free_memory_mb, p.free_disk_mb, p.free_gpus = cpus, memory, disk, gpus
        self.pilots[pilot_id] = p
        self.busy_core_s.setdefault(pilot_id, 0.0)
        self._free[site][pilot_id] = p
        self._went_idle(p)
        self.schedule(retire, lambda: self._retire(p))
        self.dirty = True
        return p

    def _went_idle(self, p: SimPilot) -> None:
        now = self.clock()
        p.idle_since = now
        if not p.accepting:
            self._exit(p)
            return
        timeout = self.sites[p.site].idle_timeout
        self.schedule(now + timeout, lambda: self._idle_check(p, now))

    def _idle_check(self, p: SimPilot, since: float) -> None:
        if p.pilot_id in self.pilots and not p.running and p.idle_since == since:
            self._exit(p)

    def _retire(self, p: SimPilot) -> None:
        if p.pilot_id not in self.pilots:
            return
        p.accepting = False
        self._free[p.site].pop(p.pilot_id, None)
        if not p.running:
            self._exit(p)

    def _exit(self, p: SimPilot) -> None:
        """The startd leaves by itself; the simulation ends its batch job."""
        if self.pilots.pop(p.pilot_id, None) is None:
            return
        p.accepting = False
        self._free[p.site].pop(p.pilot_id, None)
        self.on_exit(p)

    def leave(self, pilot_id: str) -> int:
        """The pilot's batch job ended (walltime, preemption, cancel): evict its jobs."""
        p = self.pilots.pop(pilot_id, None)
        if p is None:
            return 0
        p.accepting = False
        self._free[p.site].pop(pilot_id, None)
        now = self.clock()
        evicted = sorted(p.running, key=lambda j: j.idx)
        for job in evicted:
            self._account(job, p, now, completed=False)
            job.pilot = None
            job.attempt += 1
            job.evictions += 1
            job.group.idle.appendleft(job)
            self.idle_jobs += 1
            self.running_jobs -= 1
        p.running.clear()
        if evicted:
            self.dirty = True
        return len(evicted)

    def pilot_slots(self) -> list[PilotSlot]:
        """Our pilots' partitionable slots, as the collector would list them."""
        now = self.clock()
        return [
            PilotSlot(
                name=f"slot1@{p.pilot_id}",
                site=p.site,
                pilot_id=p.pilot_id,
                total_cpus=p.cpus,
                total_memory_mb=p.memory_mb,
                total_disk_mb=p.disk_mb,
                total_gpus=p.gpus,
                free_cpus=p.free_cpus if p.accepting else 0,
                free_memory_mb=p.free_memory_mb,
                free_disk_mb=p.free_disk_mb,
                free_gpus=p.free_gpus,
                busy=bool(p.running),
                seen_at=now,
                retire_at=p.retire_at,
            )
            for p in self.pilots.values()
        ]

    # -- running jobs -------------------------------------------------------------------------
    def _account(self, job: SimJob, p: SimPilot, now: float, *, completed: bool) -> None:
        s = job.spec
        self.busy_core_s[p.pilot_id] += (now - job.run_start) * s.cpus
        self.runs.append(JobRun(job.idx, p.pilot_id, p.site, job.run_start, now, s.cpus, completed))
        if job.listed:  # a run the loop never saw is never asked for
            self._ended[(p.pilot_id, _gid(job.idx), job.run_start)] = (now, job.listed)
        p.running.discard(job)
        p.free_cpus += s.cpus
        p.free_memory_mb += s.memory_mb
        p.free_disk_mb += s.disk_mb
        p.free_gpus += s.gpus
        if p.accepting and p.free_cpus > 0:
            self._free[p.site][p.pilot_id] = p

    def _start(self, job: SimJob, p: SimPilot) -> None:
        now = self.clock()
        s = job.spec
        p.free_cpus -= s.cpus
        p.free_memory_mb -= s.memory_mb
        p.free_disk_mb -= s.disk_mb
        p.free_gpus -= s.gpus
        p.running.add(job)
        p.idle_since = None
        if p.free_cpus <= 0:
            self._free[p.site].pop(p.pilot_id, None)
        job.pilot, job.run_start, job.listed = p, now, 0
        if job.first_start is None:
            job.first_start = now
        job.attempt += 1
        self.idle_jobs -= 1
        self.running_jobs += 1
        attempt = job.attempt
        self.schedule(now + s.runtime_s, lambda: self._done(job, attempt))

    def _done(self, job: SimJob, attempt: int) -> None:
        p = job.pilot
        if p is None or job.attempt != attempt:
            return
        now = self.clock()
        self._account(job, p, now, completed=True)
        job.pilot, job.end_at = None, now
        self.running_jobs -= 1
        self.completed += 1
        self.dirty = True
        group = job.group
        if p.accepting and group.idle:  # claim reuse: the schedd runs the next job of the group
            self._fill(group, p)
        if not p.running:
            self._went_idle(p)

    def _fill(self, group: SimGroup, p: SimPilot) -> None:
        spec = group.idle[0].spec
        k = min(p.fits(spec), len(group.idle))
        for _ in range(k):
            self._start(group.idle.popleft(), p)

    def negotiate(self) -> int:
        """One negotiation cycle: idle groups, oldest first, onto pilots with free resources.

        Pilots are tried fullest first (fewest free cores, then least free memory), as the
        pool's ``NEGOTIATOR_PRE_JOB_RANK`` generated by :mod:`campus_factory.pilot.poolconfig`
        ranks them: depth-first filling lets the emptiest pilots go idle and leave.
        """
        self.negotiations += 1
        self.dirty = False
        started = 0
        groups = sorted((g for g in self.groups.values() if g.idle), key=lambda g: (g.idle[0].submit_at, g.gid))
        for g in groups:
            spec = g.idle[0].spec
            candidates = [
                p for site, free in self._free.items() if free and self.matcher.matches(g, site) for p in free.values()
            ]
            candidates.sort(key=lambda p: (p.free_cpus, p.free_memory_mb, p.joined_at, p.pilot_id))
            for p in candidates:
                k = min(p.fits(spec), len(g.idle))
                for _ in range(k):
                    self._start(g.idle.popleft(), p)
                started += k
                if not g.idle:
                    break
        return started

    # -- the loop's job source ----------------------------------------------------------------
    def jobs_on_pilots(self) -> list[RunningJob]:
        """Jobs running on pilots, as the collector's dynamic slots would list them.

        The loop asks for the ends of the runs it saw that are gone right after each listing, so
        an end kept since two listings ago is of a run it did not record: it is dropped (what is
        kept stays bounded by the runs of one cycle)."""
        self._listings = n = self._listings + 1
        self._ended = {k: v for k, v in self._ended.items() if v[1] >= n - 1}
        out = []
        for p in self.pilots.values():
            for j in p.running:
                j.listed = n
                out.append(RunningJob(p.pilot_id, _gid(j.idx), j.spec.owner, "transparent", j.run_start, j.spec.cpus))
        return out

    def run_ends(self, runs: list[tuple[str, str, float]]) -> dict[tuple[str, str, float], float | bool | None]:
        """When runs no longer running ended (as a schedd's history tells)."""
        return {k: self._ended.pop(k)[0] for k in runs if k in self._ended}

    def group_of(self, job_id: str) -> str | None:
        """The job group of a job (what the real loop learns by seeing the job idle)."""
        head = job_id.split("#")[1] if job_id.count("#") == 2 else ""
        idx = head.split(".", 1)[0]
        return self.jobs[int(idx)].group.gid if idx.isdigit() and int(idx) < len(self.jobs) else None

    def site_usage(self) -> Mapping[str, tuple[int, int]]:
        """(cores, busy cores) of joined pilots per site."""
        out = {name: [0, 0] for name in self.sites}
        for p in self.pilots.values():
            out[p.site][0] += p.cpus
            out[p.site][1] += p.cpus - p.free_cpus
        return {k: (v[0], v[1]) for k, v in out.items()}
