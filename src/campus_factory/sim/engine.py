"""The discrete-event simulation: workload, pool, sites and the real loop on one clock.

Events (job arrivals, pilots starting, booting, ending, jobs finishing, negotiation cycles)
sit in one heap ordered by time and insertion; the factory cycle runs every
``cycle_interval`` of simulated time between them. The run ends when every job that can run
anywhere has finished and no pilot is left at any site, or ``drain_hours`` after the last
submission. The ledger is a throwaway SQLite file (durability off: it is a simulation).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event

from ..config import Config
from ..ledger import Ledger
from ..providers.fake import FakeJob
from .loop import Clock, SimFactory
from .policies import PlannerPolicy, Policy
from .pool import JobRun, SimJob, SimPilot, SimPool
from .sites import SimSite, SiteModel
from .workloads import JobSpec

__all__ = ["PilotStat", "Sample", "Scenario", "SimResult", "SimSettings", "Simulation", "open_sim_ledger"]


@dataclass(frozen=True)
class SimSettings:
    seed: int = 1
    negotiator_interval_s: float = 60.0
    sample_interval_s: float = 600.0
    drain_hours: float = 12.0
    start_time: float = 1_700_000_000.0


@dataclass(frozen=True)
class Scenario:
    """A campus to simulate: the factory config, each site's behaviour, and settings."""

    config: Config
    models: Mapping[str, SiteModel]
    settings: SimSettings = SimSettings()


@dataclass
class PilotStat:
    pilot_id: str
    site: str
    cpus: int
    submitted_at: float
    started_at: float | None = None
    joined_at: float | None = None
    ended_at: float | None = None
    state: str = "pending"
    busy_core_s: float = 0.0


@dataclass(frozen=True)
class Sample:
    """The pool and the sites at one moment (time in seconds from the start)."""

    t: float
    idle_jobs: int
    running_jobs: int
    completed_jobs: int
    queued: Mapping[str, int]
    running: Mapping[str, int]
    cores: Mapping[str, int]
    busy_cores: Mapping[str, int]


@dataclass(repr=False)
class SimResult:
    policy: str
    scenario: Scenario
    jobs: list[SimJob]
    pilots: list[PilotStat]
    runs: list[JobRun]
    samples: list[Sample]
    start: float
    end: float
    wall_s: float = 0.0
    cycles: int = 0
    unrunnable_jobs: int = 0
    peak_alive: dict[str, int] = field(default_factory=dict)
    peak_queued: dict[str, int] = field(default_factory=dict)
    peak_alive_cores: dict[str, int] = field(default_factory=dict)
    peak_queued_cores: dict[str, int] = field(default_factory=dict)
    match_evaluations: int = 0
    negotiations: int = 0

    def __repr__(self) -> str:
        # short: asyncio.run formats its main task, and so this result, each time it looks at the
        # SIGINT handler as it ends; every job's and pilot's fields would take most of a second
        n = f"jobs={len(self.jobs)}, pilots={len(self.pilots)}, runs={len(self.runs)}, cycles={self.cycles}"
        return f"SimResult(policy={self.policy!r}, {n})"


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=MEMORY")
    cur.execute("PRAGMA synchronous=OFF")
    cur.close()


def open_sim_ledger(path: Path) -> Ledger:
    """A ledger in a throwaway SQLite file, migrated, without fsyncs."""
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _pragmas)
    ledger = Ledger(engine)
    ledger.migrate()
    return ledger


class Simulation:
    """One run of a workload on a scenario under one policy."""

    def __init__(
        self,
        scenario: Scenario,
        workload: Sequence[JobSpec],
        policy: Policy,
        *,
        progress: Callable[[Sample], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.workload = sorted(workload, key=lambda j: j.submit_s)
        self.policy = policy
        self.progress = progress
        st = scenario.settings
        self.t0 = st.start_time
        self.clock = Clock(self.t0)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        cfg = scenario.config
        self.pool = SimPool(
            cfg.sites,
            clock=self.clock,
            schedule=self.schedule,
            on_exit=self._startd_left,
            retire_margin_s=cfg.pilot.retire_margin,
            fill_only=isinstance(policy, PlannerPolicy),  # the baselines start plain whole-slot glideins
        )
        self.sites = {
            s.name: SimSite(s, scenario.models.get(s.name, SiteModel()), clock=self.clock, events=self, seed=st.seed)
            for s in cfg.sites
        }
        self.stats: dict[str, PilotStat] = {}
        self.samples: list[Sample] = []
        self.arrived = 0
        self.peak_alive = {s: 0 for s in self.sites}
        self.peak_queued = {s: 0 for s in self.sites}
        self.peak_alive_cores = {s: 0 for s in self.sites}
        self.peak_queued_cores = {s: 0 for s in self.sites}

    # -- SiteEvents ---------------------------------------------------------------------------
    def schedule(self, at: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), fn))

    def pilot_joined(self, site: SimSite, job: FakeJob) -> None:
        started = site.started_at[job.job_id]
        end = started + max(60.0, site.config.walltime - site.config.batch.term_margin)
        self.pool.join(job.pilot_id, site.site, job.job_id, end, site.sizes.get(job.job_id))
        self._stat(site, job).joined_at = self.clock()

    def pilot_ended(self, site: SimSite, job: FakeJob) -> None:
        self.pool.leave(job.pilot_id)

    def _startd_left(self, pilot: SimPilot) -> None:
        self.sites[pilot.site].leave(pilot.job_id)

    def _stat(self, site: SimSite, job: FakeJob) -> PilotStat:
        st = self.stats.get(job.pilot_id)
        if st is None:
            cpus = site.sizes[job.job_id][0] if job.job_id in site.sizes else site.config.slot.cpus
            st = self.stats[job.pilot_id] = PilotStat(job.pilot_id, site.site, cpus, job.submitted_at)
        return st

    # -- the run ------------------------------------------------------------------------------
    def _arrive(self, spec: JobSpec) -> None:
        self.pool.submit(spec)
        self.arrived += 1

    def _negotiate(self) -> None:
        if self.pool.dirty:
            self.pool.negotiate()
        self.schedule(self.clock() + self.scenario.settings.negotiator_interval_s, self._negotiate)

    def _sample(self) -> None:
        usage = self.pool.site_usage()
        sample = Sample(
            self.clock() - self.t0,
            self.pool.idle_jobs,
            self.pool.running_jobs,
            self.pool.completed,
            {n: s.pending for n, s in self.sites.items()},
            {n: s.running for n, s in self.sites.items()},
            {n: usage[n][0] for n in self.sites},
            {n: usage[n][1] for n in self.sites},
        )
        self.samples.append(sample)
        if self.progress is not None:
            self.progress(sample)

    def _finished(self) -> bool:
        """Every job that can run has run and no pilot is left.

        Once only jobs matching no site are idle, they are removed from the queue (their owners
        would remove them), so that no policy provisions for them beyond the workload.
        """
        if self.arrived < len(self.workload) or self.pool.running_jobs:
            return False
        if not all(not self.pool.matcher.runnable_anywhere(g) for g in self.pool.groups.values() if g.idle):
            return False
        self.pool.withdraw_unrunnable()
        return not any(s.pending or s.running for s in self.sites.values())

    async def run(self) -> SimResult:
        wall = time.perf_counter()
        st = self.scenario.settings
        interval = self.scenario.config.factory.cycle_interval
        for spec in self.workload:
            self.schedule(self.t0 + spec.submit_s, functools.partial(self._arrive, spec))
        self.schedule(self.t0, self._negotiate)
        last = self.workload[-1].submit_s if self.workload else 0.0
        horizon = self.t0 + last + st.drain_hours * 3600.0
        next_sample = self.t0
        cycles = 0
        with tempfile.TemporaryDirectory(prefix="cf-sim-") as tmp:
            ledger = open_sim_ledger(Path(tmp) / "ledger.sqlite")
            factory = SimFactory(
                self.scenario.config,
                ledger,
                self.pool,
                self.sites,
                pool=self.pool,
                clock=self.clock,
                policy=self.policy,
            )
            next_cycle = self.t0
            try:
                while True:
                    top = self._heap[0][0] if self._heap else float("inf")
                    if next_cycle <= top:
                        self.clock.t = next_cycle
                        while next_sample <= next_cycle:
                            self._sample()
                            next_sample += st.sample_interval_s
                        await factory.run_once()
                        cycles += 1
                        for name, site in self.sites.items():
                            self.peak_alive[name] = max(self.peak_alive[name], site.pending + site.running)
                            self.peak_queued[name] = max(self.peak_queued[name], site.pending)
                            cores = site.pending_cores + site.running_cores
                            self.peak_alive_cores[name] = max(self.peak_alive_cores[name], cores)
                            self.peak_queued_cores[name] = max(self.peak_queued_cores[name], site.pending_cores)
                        next_cycle += interval
                        if self.clock.t >= horizon or (cycles % 5 == 0 and self._finished()):
                            break
                        continue
                    at, _, fn = heapq.heappop(self._heap)
                    self.clock.t = at
                    fn()
            finally:
                ledger.close()
        self._sample()
        return self._result(cycles, time.perf_counter() - wall)

    def _result(self, cycles: int, wall: float) -> SimResult:
        end = self.clock()
        for site in self.sites.values():
            for job in [*site.archive.values(), *site.jobs.values()]:
                stat = self._stat(site, job)
                stat.started_at = site.started_at.get(job.job_id)
                stat.ended_at = job.ended_at if job.ended_at is not None else (end if stat.started_at else None)
                stat.state = job.state.value
        for stat in self.stats.values():
            stat.busy_core_s = self.pool.busy_core_s.get(stat.pilot_id, 0.0)
        # jobs still running at the horizon: count their time so far as used
        for sj in self.pool.jobs:
            if sj.pilot is not None:
                self.stats[sj.pilot.pilot_id].busy_core_s += (end - sj.run_start) * sj.spec.cpus
        unrunnable = self.pool.withdrawn + sum(
            len(g.idle) for g in self.pool.groups.values() if not self.pool.matcher.runnable_anywhere(g)
        )
        return SimResult(
            policy=self.policy.name,
            scenario=self.scenario,
            jobs=self.pool.jobs,
            pilots=sorted(self.stats.values(), key=lambda s: s.submitted_at),
            runs=self.pool.runs,
            samples=self.samples,
            start=self.t0,
            end=end,
            wall_s=wall,
            cycles=cycles,
            unrunnable_jobs=unrunnable,
            peak_alive=dict(self.peak_alive),
            peak_queued=dict(self.peak_queued),
            peak_alive_cores=dict(self.peak_alive_cores),
            peak_queued_cores=dict(self.peak_queued_cores),
            match_evaluations=self.pool.matcher.evaluations,
            negotiations=self.pool.negotiations,
        )
