"""The loop benchmark: one factory, N live pilots in a real ledger, 20 sites, demand drifting.

What one cycle of the real :class:`~campus_factory.loop.factory.Factory` costs when it holds N
live pilots. The sites are :class:`~campus_factory.providers.fake.FakeProvider` (a batch
scheduler in memory: queue listing, accounting after ``min_job_age``, arrays), the pool a
:class:`~campus_factory.pool.fake.FakePool` holding every running pilot's slot ad (busy), the
ledger a real SQLite file or PostgreSQL database. The N pilots are seeded through the ledger's
own writes (``record_requests`` then ``submitted``) and the providers' own ``submit``; then
each cycle, on a simulated clock advancing one cycle interval, about 0.5 % of the pilots end at
their site (their slot leaves the pool) and the planner replaces them, while the job groups'
counts drift. Measured per cycle: wall time, SQL statements sent to the ledger; and the
process's peak RSS at the end.
"""

from __future__ import annotations

import asyncio
import logging
import random
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import event

from ..config import parse_config
from ..domain import JobGroup, PilotRequest
from ..errors import LedgerError
from ..ledger import LIVE, Ledger, PilotEvent, Update
from ..loop.factory import Factory
from ..pool.fake import FakePool, pilot_ad
from ..providers.base import JobState, Submission
from ..providers.fake import FakeProvider
from .loop import Clock
from .synthetic import synthetic_site_configs

__all__ = ["LoopBenchResult", "QueryCounter", "bench_config", "run_loop_bench"]

SITES = 20
CYCLE_S = 60.0
START = 1_800_000_000.0


@dataclass(frozen=True)
class LoopBenchResult:
    pilots: int
    cycle_s_median: float
    cycle_s_p95: float
    rss_mb: float
    queries_per_cycle: float
    backend: str = "sqlite"
    cycles: int = 0
    seed_s: float = 0.0
    changed_per_cycle: float = 0.0
    cycle_cpu_s_median: float = 0.0
    list_s: float = 0.0  # the newest 200 live pilots (pilot list, the API's first page)
    list_deep_s: float = 0.0  # 200 live pilots from the middle (a deep page)

    def summary(self) -> dict[str, Any]:
        """The figures the issue asks for, as ``bench loop --json`` prints them."""
        return {
            "pilots": self.pilots,
            "cycle_s_median": round(self.cycle_s_median, 4),
            "cycle_s_p95": round(self.cycle_s_p95, 4),
            "rss_mb": round(self.rss_mb, 1),
            "queries_per_cycle": self.queries_per_cycle,
            "backend": self.backend,
            "cycles": self.cycles,
            "changed_per_cycle": self.changed_per_cycle,
            "cycle_cpu_s_median": round(self.cycle_cpu_s_median, 4),
            "list_s": round(self.list_s, 4),
            "list_deep_s": round(self.list_deep_s, 4),
        }


class QueryCounter:
    """Counts the SQL statements an engine sends (``before_cursor_execute``)."""

    def __init__(self, ledger: Ledger) -> None:
        self.count = 0
        event.listen(ledger.engine, "before_cursor_execute", self._on)

    def _on(self, *_: Any) -> None:
        self.count += 1


def bench_config(pilots: int, sites: int = SITES, name: str = "bench") -> Any:
    """20 fake sites (the synthetic sites, free of cost) with room for ``pilots`` pilots and a few more."""
    tables = synthetic_site_configs(sites, seed=1)
    per_site = -(-pilots // sites)
    for t in tables:
        t["limits"] = {"max_pilots": per_site + 5, "max_queued": per_site + 5, "max_submit_per_cycle": 25}
        t["slot"].pop("start", None)
        t["slot"]["sizing"] = "fixed"  # whole-slot pilots: the limits count pilots, N stays N
        t.pop("allowed_owners", None)
        t.pop("allowed_groups", None)
        t["walltime"] = 48 * 3600
    return parse_config({"factory": {"name": name, "cycle_interval": CYCLE_S}, "sites": tables})


def _demand(pilots: int, rng: random.Random) -> list[JobGroup]:
    """About twice as many idle jobs as the pilots' cores would take, in 200 groups."""
    return [
        JobGroup(
            group_id=f"g{i:04d}",
            count=max(1, pilots // 100),
            cpus=rng.choice((1, 1, 2, 4)),
            memory_mb=rng.choice((1000, 2000, 4000)),
            owner=f"user{i % 40:02d}",
        )
        for i in range(200)
    ]


def _drift(groups: list[JobGroup], rng: random.Random) -> list[JobGroup]:
    return [replace(g, count=max(1, g.count + rng.randint(-3, 3))) for g in groups]


class _Bench:
    def __init__(self, pilots: int, url: str, seed: int) -> None:
        self.n = pilots
        self.rng = random.Random(seed)
        self.clock = Clock(START)
        self.config = bench_config(pilots)
        self.ledger = Ledger.open(url)
        self.providers = {
            s.name: FakeProvider(s.name, clock=self.clock, start_delay=0.0, min_job_age=300.0)
            for s in self.config.sites
        }
        self.pool = FakePool(now=START)
        self.factory = Factory(
            self.config, self.ledger, _NoDemand(), dict(self.providers), pool=self.pool, clock=self.clock
        )
        self._ids = 0

    def new_id(self) -> str:
        self._ids += 1
        return f"{self._ids:010x}"

    def seed(self) -> None:
        """N live pilots, spread over the sites, as the factory would have written them."""
        per_site = -(-self.n // len(self.config.sites))
        left = self.n
        for site in self.config.sites:
            n = min(per_site, left)
            left -= n
            if n <= 0:
                break
            sub = self.new_id()
            reqs = tuple(
                PilotRequest(
                    f"{site.name}-{self.new_id()}",
                    site.slot.cpus,
                    site.slot.memory_mb,
                    site.slot.disk_mb,
                    0,
                    site.walltime,
                )
                for _ in range(n)
            )
            now = self.clock()
            self.ledger.record_requests(factory="bench", site=site.name, submission_id=sub, requests=reqs, now=now)
            done = asyncio.run(self.providers[site.name].submit(Submission(sub, f"cf-bench-{sub}", reqs)))
            self.ledger.apply([Update(s.pilot_id, PilotEvent.SUBMITTED, job_id=s.job_id) for s in done], now)
        self.sync_pool()

    def sync_pool(self) -> None:
        """The pool holds a busy slot for every running pilot (as their startds advertise)."""
        ads = []
        for site in self.config.sites:
            for job in self.providers[site.name].active():
                if job.state is JobState.RUNNING:
                    c, m = site.slot.cpus, site.slot.memory_mb
                    ads.append(
                        pilot_ad(
                            site.name,
                            job.pilot_id,
                            cpus=c,
                            memory_mb=m,
                            used_cpus=c,
                            used_memory_mb=m // 2,
                            seen_at=self.clock(),
                            factory="bench",
                        )
                    )
        self.pool.ads = ads
        self.pool.now = self.clock()

    def churn(self, share: float = 0.005) -> int:
        """About ``share`` of the running pilots end at their site (walltime, preemption)."""
        ended = 0
        for provider in self.providers.values():
            for job in provider.active():
                if job.state is JobState.RUNNING and self.rng.random() < share:
                    provider.finish(job.job_id, JobState.COMPLETED, 0)
                    ended += 1
        return ended


class _NoDemand:
    def idle_groups(self) -> list[JobGroup]:
        return []


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_loop_bench(
    pilots: int,
    *,
    ledger_url: str | None = None,
    cycles: int = 20,
    seed: int = 1,
    churn: float = 0.005,
    warmup: int = 1,
) -> LoopBenchResult:
    """Seed ``pilots`` live pilots, run ``warmup`` cycles, then time ``cycles`` cycles in which
    ``churn`` of the running pilots end at their site."""
    quiet = logging.getLogger("campus_factory")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the plan's decision lines would time the terminal
    try:
        return _run(pilots, ledger_url, cycles, seed, churn, warmup)
    finally:
        quiet.setLevel(level)


def _run(pilots: int, ledger_url: str | None, cycles: int, seed: int, churn: float, warmup: int) -> LoopBenchResult:
    with tempfile.TemporaryDirectory(prefix="cf-bench-loop-") as tmp:
        url = ledger_url or f"sqlite:///{Path(tmp) / 'ledger.sqlite'}"
        b = _Bench(pilots, url, seed)
        if b.ledger.pilots(factory="bench", limit=1):
            b.ledger.close()
            raise LedgerError(f"the ledger at {url} already holds pilots of a factory named bench: give an empty one")
        b.factory.new_id = b.new_id  # type: ignore[method-assign]  # reproducible ids
        try:
            t0 = time.perf_counter()
            b.seed()
            seed_s = time.perf_counter() - t0
            counter = QueryCounter(b.ledger)
            demand = _demand(pilots, b.rng)
            times: list[float] = []
            cpus: list[float] = []
            queries: list[int] = []
            changed: list[int] = []
            for i in range(warmup + cycles):
                b.clock.t += CYCLE_S
                ended = b.churn(churn)
                b.sync_pool()
                demand = _drift(demand, b.rng)
                counter.count = 0
                t, c = time.perf_counter(), time.process_time()
                report = asyncio.run(b.factory.run_once(demand=demand))
                elapsed, cpu = time.perf_counter() - t, time.process_time() - c
                if report.errors:
                    raise RuntimeError(f"bench cycle failed: {report.errors}")
                if i >= warmup:  # the first cycles warm caches (match cache, live pilots)
                    times.append(elapsed)
                    cpus.append(cpu)
                    queries.append(counter.count)
                    changed.append(ended + report.submitted + report.cancelled)
            t = time.perf_counter()
            b.ledger.pilots(factory="bench", states=LIVE, limit=200)
            list_s = time.perf_counter() - t
            t = time.perf_counter()
            b.ledger.pilots(factory="bench", states=LIVE, limit=200, offset=pilots // 2)
            list_deep_s = time.perf_counter() - t
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            return LoopBenchResult(
                pilots=pilots,
                cycle_s_median=statistics.median(times),
                cycle_s_p95=p95,
                rss_mb=_peak_rss_mb(),
                queries_per_cycle=statistics.median(queries),
                backend=b.ledger.engine.dialect.name,
                cycles=cycles,
                seed_s=seed_s,
                changed_per_cycle=statistics.median(changed),
                cycle_cpu_s_median=statistics.median(cpus),
                list_s=list_s,
                list_deep_s=list_deep_s,
            )
        finally:
            b.ledger.close()
