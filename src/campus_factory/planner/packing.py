"""Counting supply honestly: packing jobs into pilots of a site's size.

A site's bins are, in order: the capacity already there (running pilots with their free
resources and remaining lifetime, then queued pilots as whole empty pilots, oldest first),
then new pilots opened within the site's budget. Jobs of one group are identical, so a group
is packed at once: first fit over the bins in order, as many jobs per bin as fit. Identical new
bins are kept as one entry with a multiplicity, so packing 100 000 jobs costs a few hundred
steps. Groups arrive in decreasing size: first-fit decreasing.

With ``fit`` (a site whose pilots are sized to demand), a new pilot is opened for one job and
asks for that job's resources (:func:`fitted`); the site's slot is the largest pilot allowed.
A pilot already at such a site takes only a job of its own cores (its glidein START requires a
job to fill it): a bin with ``whole`` set takes no smaller job.

At a cloud site choosing among instance types, ``choose`` (:mod:`.flavors`) gives the new pilots'
shape instead: the cheapest listed type for the jobs to place, which holds as many of them as fit
and takes any job (no ``whole``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Bin", "Shape", "SiteBins", "fitted", "per_bin"]

#: cpus, memory MB, disk MB, GPUs
Shape = tuple[int, int, int, int]


def per_bin(free: Shape, job: Shape) -> int:
    """How many jobs of size ``job`` fit in ``free`` (disk -1 in ``free`` means unlimited)."""
    n = free[0] // job[0] if job[0] > 0 else free[0]
    if job[1] > 0:
        m = free[1] // job[1]
        if m < n:
            n = m
    if job[2] > 0 and free[2] >= 0:
        m = free[2] // job[2]
        if m < n:
            n = m
    if job[3] > 0:
        m = free[3] // job[3]
        if m < n:
            n = m
    return n if n > 0 else 0


def fitted(slot: Shape, job: Shape) -> Shape:
    """A pilot just big enough for one job: its cores, memory, disk and GPUs.

    Memory and disk the job does not request are the slot's, in proportion to the cores;
    disk stays unlimited (-1) when the slot's is.
    """
    cpus = max(job[0], 1)
    share = min(cpus, slot[0]) / max(slot[0], 1)
    memory = job[1] if job[1] > 0 else max(1, int(slot[1] * share))
    disk = -1 if slot[2] < 0 else job[2] if job[2] > 0 else int(slot[2] * share)
    return (cpus, memory, disk, max(job[3], 0))


def _minus(free: Shape, job: Shape, k: int) -> Shape:
    disk = free[2] - k * job[2] if free[2] >= 0 else -1
    return (free[0] - k * job[0], free[1] - k * job[1], disk, free[3] - k * job[3])


@dataclass
class Bin:
    """``count`` identical pilots with ``free`` resources each, living ``life`` more seconds."""

    free: Shape
    count: int
    life: float
    pilot_id: str | None = None  # set for a pilot already there (count == 1)
    used: bool = False
    whole: int = 0  # the pilot's cores when it only takes jobs of that many cores (0: any job)


@dataclass
class SiteBins:
    """The open bins of one site (bins with no free core are dropped) and its budget."""

    slot: Shape
    lifetime: float
    budget: int
    fit: bool = False
    core_budget: int | None = None  # cores new pilots may take in all (max_cores); None: no limit
    #: instance types (planner.flavors.chooser): (job, jobs) -> (new pilots' shape, type) or why none fits
    choose: Callable[[Shape, int], tuple[Shape, str] | str] | None = None
    types: dict[Shape, str] = field(default_factory=dict)  # the type of each opened shape
    misfit: str = ""  # why the last group found no instance type
    last_type: str = ""  # the type of the last new pilots opened
    bins: list[Bin] = field(default_factory=list)
    opened: dict[Shape, int] = field(default_factory=dict)
    new_pilots: int = 0
    new_cores: int = 0
    jobs: int = 0
    supply: int = 0
    used: set[str] = field(default_factory=set)

    def add_existing(self, pilot_id: str, free: Shape, life: float, whole: int = 0) -> None:
        """A pilot already there; ``whole``: its cores, when it only takes jobs that fill it."""
        if free[0] > 0:
            self.bins.append(Bin(free, 1, life, pilot_id, False, whole))
            self.supply += 1

    def _open(self, parts: list[Bin], b: Bin) -> None:
        if b.free[0] > 0:
            parts.append(b)

    def take(
        self, job: Shape, runtime: float, want: int, *, existing: bool = True, new: bool = True
    ) -> tuple[int, int, int]:
        """Place up to ``want`` jobs; returns (placed, into existing pilots, new pilots opened).

        ``existing``/``new``: whether bins already open (pilots there, or opened by earlier groups)
        and new pilots may take them."""
        left = want
        into_existing = 0
        i = 0 if existing else len(self.bins)
        bins = self.bins
        while left > 0 and i < len(bins):
            b = bins[i]
            k = per_bin(b.free, job) if b.life >= runtime and job[0] >= b.whole else 0
            if k == 0:
                i += 1
                continue
            full = min(b.count, left // k)
            rest = left - full * k if full < b.count else 0
            parts: list[Bin] = []
            if full:
                self._open(parts, Bin(_minus(b.free, job, k), full, b.life, b.pilot_id, True, b.whole))
            if rest:
                self._open(parts, Bin(_minus(b.free, job, rest), 1, b.life, b.pilot_id, True, b.whole))
            untouched = b.count - full - (1 if rest else 0)
            if untouched:
                parts.append(Bin(b.free, untouched, b.life, b.pilot_id, b.used, b.whole))
            bins[i : i + 1] = parts
            placed = full * k + rest
            left -= placed
            if b.pilot_id is not None:
                into_existing += placed
                self.used.add(b.pilot_id)
            i += len(parts)
        opened = 0
        k = per_bin(self.slot, job) if self.lifetime >= runtime else 0
        pilot = self.slot
        kind = ""
        if self.choose is not None and new and left > 0 and k > 0:
            chosen = self.choose(job, left)
            if isinstance(chosen, str):
                self.misfit, k = chosen, 0
            else:
                (pilot, kind), self.misfit = chosen, ""
                k = per_bin(pilot, job)
        elif self.fit and k > 0:
            pilot, k = fitted(self.slot, job), 1
        if new and left > 0 and k > 0 and self.budget > self.new_pilots:
            opened = min(math.ceil(left / k), self.budget - self.new_pilots)
            if self.core_budget is not None:
                opened = max(0, min(opened, (self.core_budget - self.new_cores) // max(pilot[0], 1)))
        if opened > 0:
            placed = min(left, opened * k)
            full, rest = divmod(placed, k)
            if full:
                self._open(bins, Bin(_minus(pilot, job, k), full, self.lifetime, None, True))
            if rest:
                self._open(bins, Bin(_minus(pilot, job, rest), 1, self.lifetime, None, True))
            self.new_pilots += opened
            self.new_cores += opened * pilot[0]
            self.opened[pilot] = self.opened.get(pilot, 0) + opened
            if kind:
                self.types[pilot] = self.last_type = kind
            left -= placed
        self.jobs += want - left
        return want - left, into_existing, opened

    def used_pilots(self) -> set[str]:
        """Pilots already there that took jobs in this plan."""
        return set(self.used)

    def capacity(self) -> int:
        """Pilots already there that can take work (a free core, not retiring)."""
        return self.supply
