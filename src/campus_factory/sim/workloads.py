"""Workloads for the simulator: jobs over time, read from files or generated from a seed.

* :func:`read_swf`: the Standard Workload Format of the Parallel Workloads Archive (one job per
  line, 18 whitespace-separated fields, ``;`` comments, ``-1`` for unknown). Submit time (2),
  run time (4), processors (8, else 5), memory (10, else 7, KB per processor), requested time
  (9, kept as ``MaxWallTimeMins``) and user (12) are used; jobs that never ran are skipped.
* :func:`read_csv`: a header line and one job per row: ``submit``, ``runtime``, ``cpus``,
  ``memory_mb`` (``memory`` is accepted), and optional ``requirements``, ``owner``,
  ``disk_mb``, ``gpus``, ``walltime_mins``. Times are seconds or durations such as ``15m``.
* :func:`bursty_workload`: users submit clusters of identical jobs in bursts (a day-shaped
  arrival rate, heavy-tailed cluster sizes) with a mix of job shapes (:data:`DEFAULT_SHAPES`).
* :func:`short_singles_workload` and :func:`heavy_tail_workload`: the provisioning bench's two
  workloads of other shapes (``examples/demo/short-singles.csv`` and ``heavy-tail-mix.csv`` are
  these, written by :func:`write_csv`).

Submit times are seconds from the start of the workload (the first job at 0 for files).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import parse_duration
from ..errors import CampusFactoryError

__all__ = [
    "DEFAULT_SHAPES",
    "HEAVY_TAIL_SHAPES",
    "SHORT_SINGLES_SHAPES",
    "JobShape",
    "JobSpec",
    "WorkloadError",
    "bursty_workload",
    "heavy_tail_workload",
    "load_workload",
    "read_csv",
    "read_swf",
    "short_singles_workload",
    "write_csv",
]


class WorkloadError(CampusFactoryError):
    """A workload file that cannot be read."""


@dataclass(frozen=True)
class JobSpec:
    """One job of a workload: when it is submitted, how long it runs, what it asks for."""

    submit_s: float
    runtime_s: float
    cpus: int = 1
    memory_mb: int = 2048
    disk_mb: int = 1024
    gpus: int = 0
    owner: str = "user"
    requirements: str = "true"
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class JobShape:
    """A kind of job in a synthetic mix; ``runtime_s`` is the median of a lognormal."""

    name: str
    weight: float
    cpus: int
    memory_mb: int
    runtime_s: float
    requirements: str = "true"
    gpus: int = 0
    runtime_sigma: float = 0.6


#: a campus mix: mostly small CPU jobs, some needing CVMFS, some routed, a few impossible ones
DEFAULT_SHAPES: tuple[JobShape, ...] = (
    JobShape("single", 40, 1, 2000, 900),
    JobShape("cvmfs", 20, 1, 2000, 1200, "TARGET.HasCVMFS =?= true"),
    JobShape("quad", 12, 4, 8000, 1500),
    JobShape("bigmem", 6, 8, 30000, 2400, "TARGET.Memory >= 30000"),
    JobShape("no-cloud", 10, 1, 3000, 1200, "TARGET.IsCloudNode =!= true"),
    JobShape("cloud-only", 6, 2, 4000, 900, "TARGET.IsCloudNode =?= true"),
    JobShape("gpu", 2, 2, 8000, 1800, "TARGET.GPUs >= 1", gpus=1),
    JobShape("licensed", 1, 1, 2000, 900, "TARGET.HasMagicLicense =?= true"),
)

#: thousands of short one-core jobs in large clusters: 80 % run anywhere, 20 % need CVMFS
SHORT_SINGLES_SHAPES: tuple[JobShape, ...] = (
    JobShape("single", 80, 1, 2000, 300),
    JobShape("cvmfs", 20, 1, 2000, 300, "TARGET.HasCVMFS =?= true"),
)

#: long one-core jobs with a heavy tail (some longer than a campus pilot's walltime), 4-core,
#: 8-core large-memory and cloud-only jobs
HEAVY_TAIL_SHAPES: tuple[JobShape, ...] = (
    JobShape("long", 40, 1, 3000, 7200, runtime_sigma=1.2),
    JobShape("quad", 15, 4, 8000, 3600, runtime_sigma=1.0),
    JobShape("bigmem", 10, 8, 30000, 5400, "TARGET.Memory >= 30000", runtime_sigma=1.0),
    JobShape("cloud-only", 15, 2, 4000, 1800, "TARGET.IsCloudNode =?= true", runtime_sigma=0.6),
)


def _num(text: str | None, default: float = -1.0) -> float:
    if text is None or text.strip() == "":
        return default
    try:
        return float(text)
    except ValueError:
        return default


def read_swf(path: str | Path, *, max_jobs: int | None = None, default_memory_mb: int = 2048) -> list[JobSpec]:
    """Jobs of an SWF file (see the module docstring for the fields used)."""
    jobs: list[JobSpec] = []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc}") from exc
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith(";"):
            continue
        f = text.split()
        if len(f) < 12:
            raise WorkloadError(f"{path}:{n}: an SWF line has 18 fields, found {len(f)}")
        submit, runtime = _num(f[1]), _num(f[3])
        if submit < 0 or runtime <= 0:
            continue  # never ran, or unknown
        cpus = int(_num(f[7]) if _num(f[7]) > 0 else max(1.0, _num(f[4])))
        kb = _num(f[9]) if _num(f[9]) > 0 else _num(f[6])
        memory = math.ceil(kb * cpus / 1024) if kb > 0 else default_memory_mb * cpus
        attrs: list[tuple[str, str]] = []
        requested = _num(f[8])
        if requested > 0:
            attrs.append(("MaxWallTimeMins", str(max(1, math.ceil(requested / 60)))))
        user = int(_num(f[11]))
        owner = f"u{user}" if user >= 0 else "user"
        jobs.append(JobSpec(submit, runtime, cpus, max(1, memory), owner=owner, attributes=tuple(attrs)))
        if max_jobs is not None and len(jobs) >= max_jobs:
            break
    return _rebase(jobs)


def _rebase(jobs: list[JobSpec]) -> list[JobSpec]:
    """Sorted by submit time, the first at 0."""
    if not jobs:
        return jobs
    t0 = min(j.submit_s for j in jobs)
    return [replace(j, submit_s=j.submit_s - t0) for j in sorted(jobs, key=lambda j: j.submit_s)]


def _duration(row: dict[str, str], *names: str, required: bool = True) -> float | None:
    for name in names:
        raw = row.get(name)
        if raw is not None and raw.strip() != "":
            return parse_duration(raw.strip())
    if required:
        raise ValueError(f"missing column {names[0]!r}")
    return None


def _int(row: dict[str, str], name: str, default: int) -> int:
    raw = row.get(name)
    return default if raw is None or raw.strip() == "" else int(float(raw))


def read_csv(path: str | Path) -> list[JobSpec]:
    """Jobs of a CSV file with a header (see the module docstring for the columns)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(line for line in fh if not line.lstrip().startswith("#")))
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc}") from exc
    jobs = []
    for n, row in enumerate(rows, 2):
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        try:
            submit = _duration(row, "submit", "submit_s") or 0.0
            runtime = _duration(row, "runtime", "runtime_s") or 0.0
            memory = _int(row, "memory_mb", _int(row, "memory", 2048))
            attrs: tuple[tuple[str, str], ...] = ()
            wall = _duration(row, "walltime_mins", required=False)
            if wall:
                attrs = (("MaxWallTimeMins", str(int(wall))),)
            job = JobSpec(
                submit,
                runtime,
                cpus=_int(row, "cpus", 1),
                memory_mb=memory,
                disk_mb=_int(row, "disk_mb", 1024),
                gpus=_int(row, "gpus", 0),
                owner=row.get("owner", "").strip() or "user",
                requirements=row.get("requirements", "").strip() or "true",
                attributes=attrs,
            )
        except ValueError as exc:
            raise WorkloadError(f"{path}:{n}: {exc}") from exc
        if job.cpus < 1 or job.runtime_s <= 0:
            raise WorkloadError(f"{path}:{n}: cpus must be >= 1 and runtime > 0")
        jobs.append(job)
    return sorted(jobs, key=lambda j: j.submit_s)


def write_csv(jobs: Iterable[JobSpec], path: str | Path) -> None:
    """Write jobs in the format :func:`read_csv` reads."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["submit", "runtime", "cpus", "memory_mb", "gpus", "owner", "requirements"])
        for j in jobs:
            w.writerow(
                [f"{j.submit_s:.0f}", f"{j.runtime_s:.0f}", j.cpus, j.memory_mb, j.gpus, j.owner, j.requirements]
            )


def load_workload(path: str | Path) -> list[JobSpec]:
    """An SWF (``.swf``) or CSV file."""
    p = Path(path)
    if not p.exists():
        raise WorkloadError(f"{p}: no such workload file")
    return read_swf(p) if p.suffix.lower() == ".swf" else read_csv(p)


def _rate(t: float, day: float) -> float:
    """A day-shaped arrival rate, highest in the working hours (relative, mean ~1)."""
    return 1.0 + 0.8 * math.sin(2 * math.pi * (t / day - 0.3))


def bursty_workload(
    jobs: int,
    hours: float = 24.0,
    *,
    seed: int = 1,
    shapes: Sequence[JobShape] = DEFAULT_SHAPES,
    users: int = 12,
    mean_cluster: float = 60.0,
    burst_at: Sequence[tuple[float, float]] = (),
) -> list[JobSpec]:
    """``jobs`` jobs over ``hours`` hours in clusters of identical jobs.

    Cluster sizes are lognormal around ``mean_cluster``; cluster arrival times follow
    :func:`_rate` (by thinning). ``burst_at`` adds bursts: (hour, fraction of the jobs), all
    submitted within five minutes of that hour.
    """
    rng = random.Random(seed)
    span = hours * 3600.0
    weights = [s.weight for s in shapes]
    out: list[JobSpec] = []
    planned = [(h * 3600.0, int(jobs * frac)) for h, frac in burst_at]
    left = jobs - sum(n for _, n in planned)
    clusters: list[tuple[float, int]] = list(planned)
    while left > 0:
        t = rng.uniform(0, span)
        if rng.uniform(0, 1.8) > _rate(t, 86400.0):
            continue
        n = min(left, max(1, int(rng.lognormvariate(math.log(mean_cluster), 1.0))))
        clusters.append((t, n))
        left -= n
    for t0, n in clusters:
        shape = rng.choices(shapes, weights)[0]
        owner = f"user{rng.randrange(users):02d}"
        median = shape.runtime_s * rng.uniform(0.7, 1.4)
        spread = 300.0 if t0 in {p[0] for p in planned} else min(1800.0, 5.0 * n)
        for _ in range(n):
            runtime = max(60.0, rng.lognormvariate(math.log(median), shape.runtime_sigma))
            out.append(
                JobSpec(
                    t0 + rng.uniform(0, spread),
                    round(runtime),
                    shape.cpus,
                    shape.memory_mb,
                    gpus=shape.gpus,
                    owner=owner,
                    requirements=shape.requirements,
                )
            )
    out.sort(key=lambda j: j.submit_s)
    return out


def short_singles_workload(jobs: int = 4000, hours: float = 6.0, *, seed: int = 2) -> list[JobSpec]:
    """One-core jobs of about 5 minutes (lognormal) in clusters of ~200 (``short-singles.csv``)."""
    return bursty_workload(jobs, hours, seed=seed, shapes=SHORT_SINGLES_SHAPES, mean_cluster=200.0)


def heavy_tail_workload(jobs: int = 1500, hours: float = 12.0, *, seed: int = 3) -> list[JobSpec]:
    """Long jobs with a heavy tail, multi-core and large-memory ones, in clusters of ~30
    (``heavy-tail-mix.csv``)."""
    return bursty_workload(jobs, hours, seed=seed, shapes=HEAVY_TAIL_SHAPES, mean_cluster=30.0)
