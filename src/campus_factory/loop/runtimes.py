"""Runtimes learned from the ledger's job runs, per job group, for the planner.

Two halves:

* :class:`RunGroups` remembers, from each cycle's demand, which job group every idle job is in
  (by schedd and ``cluster.proc``, as ``JobGroup.schedd``/``JobGroup.jobs`` list them), so a run
  recorded when the job starts carries its group (``pilot_jobs.job_group``). Bounded: the
  ``max_jobs`` most recently seen jobs. A job never seen idle (it started before the factory
  looked) records no group and teaches nothing.
* :class:`RuntimeLearner` reads the groups' recent ended runs from the ledger (a bounded window
  and row count) at its first cycle, then again once runs have ended since (``dirty``), at most
  once per ``refresh_s``, and sets each group's count of runs and median
  runtime (:func:`campus_factory.planner.runtime.median_runtimes`). The planner decides whether
  they are enough to use (a declared runtime wins; too few runs: the site's ``job_runtime``).
  When the loop says which groups' runs ended (:meth:`RuntimeLearner.ended`: its job tracker
  wrote them), only those groups are read again; the others keep the runs read before, less
  those that left the window, which is what reading them again would give (their rows have not
  changed). Everything is read again at the first read, with ``force``, when the rows kept reach
  the ``limit``, when the ledger may have been written by another factory (``generation``, as
  the live pilots) and when the loop cannot tell which groups ended runs.

What is learned is the wall time between a run's start and end on a pilot: a run evicted or cut
short by its pilot's end counts as it ran, so a group that is often preempted looks shorter than
it is; the median keeps a few such runs from moving it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from sqlalchemy.exc import SQLAlchemyError

from ..domain import JobGroup
from ..ledger import Ledger
from ..ledger.runtimes import recent_group_runs
from ..planner.runtime import LAST_RUNS, median_runtimes, with_learned_runtimes

__all__ = ["RunGroups", "RuntimeLearner"]

log = logging.getLogger(__name__)


class RunGroups:
    """Job id (a GlobalJobId ``schedd#cluster.proc#qdate``) -> the job group it was idle in."""

    def __init__(self, *, max_jobs: int = 200_000) -> None:
        self.max_jobs = max_jobs
        self._of: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._of)

    def observe(self, groups: Iterable[JobGroup]) -> None:
        """Remember the groups' idle jobs; the oldest entries go beyond ``max_jobs``."""
        of = self._of
        for g in groups:
            for job in g.jobs:
                key = (g.schedd, job)
                of.pop(key, None)  # re-inserted: most recently seen last
                of[key] = g.group_id
        excess = len(of) - self.max_jobs
        if excess > 0:
            for key in list(of)[:excess]:
                del of[key]

    def group_of(self, job_id: str) -> str | None:
        schedd, sep, rest = job_id.partition("#")
        if not sep:
            return self._of.get(("", job_id))
        return self._of.get((schedd, rest.partition("#")[0]))


#: how the learner reads recent runs (:func:`campus_factory.ledger.runtimes.recent_group_runs`)
ReadRuns = Callable[..., list[tuple[str, float, float]]]


class RuntimeLearner:
    """Per job group: its recent runs' count and median, read from the ledger now and then."""

    def __init__(
        self,
        *,
        window_s: float = 7 * 86400.0,
        last: int = LAST_RUNS,
        limit: int = 20_000,
        refresh_s: float = 300.0,
        read: ReadRuns = recent_group_runs,
    ) -> None:
        self.read = read
        self.window_s = window_s
        self.last = last
        self.limit = limit
        self.refresh_s = refresh_s
        self.learned: dict[str, tuple[int, float]] = {}
        #: the job group of each job seen idle, recorded with its run
        self.groups = RunGroups()
        #: runs have ended since the last read (the loop sets it from its job tracker)
        self.dirty = False
        self._read_at: float | None = None
        #: per group, (started_at, ended_at) of the runs the last read gave (None: read them all next time)
        self._runs: dict[str, list[tuple[float, float]]] | None = None
        #: groups whose runs ended since the last read, as the loop told (:meth:`ended`)
        self._ended: set[str] = set()
        self._generation: int | None = None

    def ended(self, groups: Iterable[str]) -> None:
        """Runs ended since the last read, of these groups (those the loop's job tracker wrote)."""
        self.dirty = True
        self._ended.update(groups)

    def refresh(
        self, ledger: Ledger, factory: str, now: float, *, force: bool = False, generation: int | None = None
    ) -> None:
        """Read the recent runs: the first time, with ``force``, or when runs ended since the last
        read and ``refresh_s`` has passed (of the groups :meth:`ended` named, when it did). A
        ledger that cannot tell (not migrated yet: a read-only dry run) keeps what was learned
        before. ``generation``: the loop's reads of its live pilots; another one than at the
        last read means another factory may have written runs meanwhile."""
        fresh = self._read_at is not None and (not self.dirty or 0 <= now - self._read_at < self.refresh_s)
        if fresh and not force:
            return
        before, kept = self._read_at, self._runs
        ended, self._ended = self._ended, set()
        self._read_at, self.dirty, self._runs = now, False, None
        since = now - self.window_s
        read = partial(self.read, ledger, factory, since=since, last=self.last, limit=self.limit)
        try:
            runs = None
            if kept is not None and ended and not force and generation == self._generation and (before or 0.0) <= now:
                runs = {g: [r for r in rs if r[1] >= since] for g, rs in kept.items() if g not in ended}
                for g, start, end in read(groups=ended):
                    runs.setdefault(g, []).append((start, end))
                if sum(len(rs) for rs in runs.values()) >= self.limit:  # the full read would cut some
                    runs = None
            if runs is None:
                runs = {}
                for g, start, end in read():
                    runs.setdefault(g, []).append((start, end))
        except SQLAlchemyError as exc:
            log.warning("cannot read the job groups' recent runs, runtimes are not learned this time: %s", exc)
            return
        self._runs, self._generation = runs, generation
        rows = sorted(((g, a, b) for g, rs in runs.items() for a, b in rs), key=lambda r: -r[2])
        self.learned = median_runtimes(rows, last=self.last)

    def apply(self, groups: Sequence[JobGroup]) -> list[JobGroup]:
        """The groups with what was learned of them (``JobGroup.learned_runs``/``learned_runtime_s``)."""
        return with_learned_runtimes(groups, self.learned) if self.learned else list(groups)

    def learned_for(
        self, groups: Sequence[JobGroup], ledger: Ledger, factory: str, now: float, *, generation: int | None = None
    ) -> list[JobGroup]:
        """:meth:`refresh`, then :meth:`apply`: what a cycle hands the planner."""
        self.refresh(ledger, factory, now, generation=generation)
        return self.apply(groups)
