"""The planner benchmark: median time of one plan, cold and warm, and peak memory.

*Cold*: a new :class:`MatchCache` per plan (every ClassAd parsed, every pair evaluated).
*Warm*: the cache kept from the previous plan, as the loop keeps it between cycles, with the
demand changed a little (counts move, a few groups come and go) so the plan is not a replay.
Peak memory is the process's maximum resident set size (``ru_maxrss``), which includes the
interpreter, the libraries and the synthetic inputs.
"""

from __future__ import annotations

import os
import platform
import random
import resource
import statistics
import time
from dataclasses import dataclass, replace

from ..domain import JobGroup
from ..planner.core import plan
from ..planner.match import MatchCache
from .synthetic import synthetic_demand, synthetic_pilots, synthetic_sites

__all__ = ["BenchResult", "machine_description", "render_markdown", "replace_section", "run_planner_bench"]

MARK_START = "<!-- bench:planner:start -->"
MARK_END = "<!-- bench:planner:end -->"


@dataclass(frozen=True)
class BenchResult:
    jobs: int
    groups: int
    sites: int
    pilots: int
    runs: int
    cold_median_s: float
    warm_median_s: float
    cold_times_s: tuple[float, ...]
    warm_times_s: tuple[float, ...]
    cold_cpu_median_s: float
    warm_cpu_median_s: float
    peak_rss_mb: float
    matched_pairs: int
    submit: int
    unmatched_groups: int


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _drift(groups: list[JobGroup], rng: random.Random, next_id: int) -> tuple[list[JobGroup], int]:
    """The next cycle's demand: counts move, 1% of groups leave, as many new ones arrive."""
    out = [replace(g, count=max(1, g.count + rng.randint(-2, 2))) for g in groups if rng.random() > 0.01]
    while len(out) < len(groups):
        base = rng.choice(groups)
        out.append(replace(base, group_id=f"n{next_id:06d}", memory_mb=base.memory_mb + 1))
        next_id += 1
    return out, next_id


def run_planner_bench(
    jobs: int = 100_000, groups: int = 1000, sites: int = 50, runs: int = 5, seed: int = 1
) -> BenchResult:
    now = 1_800_000_000.0
    demand = synthetic_demand(jobs, groups, seed)
    specs = synthetic_sites(sites, seed)
    pilots = synthetic_pilots(specs, now, seed)
    cold: list[float] = []
    cold_cpu: list[float] = []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        result = plan(demand, specs, pilots, now, cache=MatchCache())
        cold.append(time.perf_counter() - t)
        cold_cpu.append(time.process_time() - c)
    cache = MatchCache()
    plan(demand, specs, pilots, now, cache=cache)
    rng = random.Random(seed)
    warm: list[float] = []
    warm_cpu: list[float] = []
    current, next_id = demand, 0
    for _ in range(runs):
        current, next_id = _drift(current, rng, next_id)
        t, c = time.perf_counter(), time.process_time()
        plan(current, specs, pilots, now, cache=cache)
        warm.append(time.perf_counter() - t)
        warm_cpu.append(time.process_time() - c)
    return BenchResult(
        jobs=sum(g.count for g in demand),
        groups=len(demand),
        sites=len(specs),
        pilots=len(pilots),
        runs=runs,
        cold_median_s=statistics.median(cold),
        warm_median_s=statistics.median(warm),
        cold_times_s=tuple(cold),
        warm_times_s=tuple(warm),
        cold_cpu_median_s=statistics.median(cold_cpu),
        warm_cpu_median_s=statistics.median(warm_cpu),
        peak_rss_mb=_peak_rss_mb(),
        matched_pairs=sum(len(d.matched) for d in result.groups),
        submit=result.total_submit,
        unmatched_groups=sum(1 for d in result.groups if not d.matched),
    )


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kb = int(fh.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    load = f", load average {os.getloadavg()[0]:.2f} at the end" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU(s) ({cpu}){mem}, {system}{load}"


def render_markdown(r: BenchResult, command: str, machine: str, date: str) -> str:
    def ms(x: float) -> str:
        return f"{x * 1000:.0f} ms"

    return "\n".join(
        [
            MARK_START,
            "## Planner",
            "",
            f"`{command}` — {r.jobs} idle jobs in {r.groups} job groups, {r.sites} sites, "
            f"{r.pilots} live pilots (synthetic, `campus_factory.sim.synthetic`, seed 1); "
            f"median of {r.runs} plans.",
            "",
            "| plan | median wall time | median CPU time | all runs (wall) |",
            "|---|---|---|---|",
            f"| cold (new match cache: every ad parsed, every pair evaluated) | {ms(r.cold_median_s)} | "
            f"{ms(r.cold_cpu_median_s)} | " + ", ".join(ms(t) for t in r.cold_times_s) + " |",
            f"| warm (cache kept from the previous cycle, demand drifting) | {ms(r.warm_median_s)} | "
            f"{ms(r.warm_cpu_median_s)} | " + ", ".join(ms(t) for t in r.warm_times_s) + " |",
            "",
            f"Peak memory (max RSS of the whole process): **{r.peak_rss_mb:.0f} MB**. "
            f"{r.matched_pairs} (group, site) pairs matched; {r.unmatched_groups} groups match no site; "
            f"the plan submits {r.submit} pilots. Target: ≤ 1 s per plan and ≤ 300 MB.",
            "",
            f"Measured {date} on: {machine}.",
            MARK_END,
        ]
    )


def replace_section(doc: str, section: str) -> str:
    """``doc`` with its planner section replaced (or appended when it has none)."""
    if MARK_START in doc and MARK_END in doc:
        head, rest = doc.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        return head + section + tail
    return doc.rstrip("\n") + "\n\n" + section + "\n"
