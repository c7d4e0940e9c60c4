"""Choosing a cloud instance type (flavor) for new pilots: the cheapest that fits.

Pure: the shapes (:class:`~campus_factory.domain.InstanceShape`, read from the cloud by the
loop and passed in as data) and the jobs' shape are arguments. For ``count`` identical jobs a
type holding ``k`` of them needs ``ceil(count / k)`` instances: the chosen type is the one whose
instances cost least in all, then the smallest (cores, memory, disk, GPUs), then by name. For one
job that is the cheapest type that fits it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..domain import InstanceShape
from .packing import Shape, per_bin

__all__ = ["Chooser", "choose_type", "chooser", "largest", "no_type_fits", "type_key"]

#: what a site's bins ask when they open new pilots: (job shape, jobs) -> (the type's shape, its name),
#: or why no type fits
Chooser = Callable[[Shape, int], "tuple[Shape, str] | str"]


def type_key(t: InstanceShape, job: Shape, count: int) -> tuple[float, int, int, int, int, str] | None:
    """How a type ranks for ``count`` jobs of shape ``job`` (smaller first); None when none fits it."""
    k = per_bin(t.resources, job)
    if k <= 0:
        return None
    instances = -(-max(count, 1) // k)
    return (instances * t.cost_per_hour, t.cpus, t.memory_mb, t.disk_mb, t.gpus, t.name)


def choose_type(types: Sequence[InstanceShape], job: Shape, count: int = 1) -> InstanceShape | None:
    """The type new pilots for ``count`` jobs of shape ``job`` are started as (None: no type fits)."""
    best: tuple[tuple[float, int, int, int, int, str], InstanceShape] | None = None
    for t in types:
        key = type_key(t, job, count)
        if key is not None and (best is None or key < best[0]):
            best = (key, t)
    return best[1] if best is not None else None


def _first_short(t: InstanceShape, job: Shape) -> str:
    have = t.resources
    for i, unit in enumerate(("core(s)", "MB", "MB disk", "GPU(s)")):
        if have[i] < job[i] and not (i == 2 and have[i] < 0):
            return f"{t.name} has {have[i]} {unit}"
    return f"{t.name} fits"


def no_type_fits(types: Sequence[InstanceShape], job: Shape) -> str:
    """Why no type fits a job of shape ``job``, naming what each type lacks (the first few)."""
    wanted = f"{job[0]} core(s)/{job[1]} MB" + (f"/{job[2]} MB disk" if job[2] > 0 else "")
    wanted += f"/{job[3]} GPU(s)" if job[3] > 0 else ""
    if not types:
        return f"no instance type is known to fit {wanted} (none read)"
    shown = ", ".join(_first_short(t, job) for t in list(types)[:4])
    more = f" and {len(types) - 4} more" if len(types) > 4 else ""
    return f"no instance type fits a job of {wanted} ({shown}{more})"


def largest(types: Sequence[InstanceShape]) -> Shape:
    """The largest pilot of any listed type, per resource: the site's slot for matching and limits."""
    if not types:
        return (0, 0, 0, 0)
    return (
        max(t.cpus for t in types),
        max(t.memory_mb for t in types),
        max(t.disk_mb for t in types),
        max(t.gpus for t in types),
    )


def chooser(types: Sequence[InstanceShape]) -> Chooser:
    """The choice of :func:`choose_type` over ``types``, as the bins of one site ask for it."""
    listed = tuple(types)

    def choose(job: Shape, count: int) -> tuple[Shape, str] | str:
        t = choose_type(listed, job, count)
        return (t.resources, t.name) if t is not None else no_type_fits(listed, job)

    return choose
