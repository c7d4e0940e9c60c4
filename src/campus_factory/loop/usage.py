"""Which jobs ran on which pilot: the ledger's record of pilot use, from the pool.

Each cycle the jobs running on this factory's pilots (their dynamic slots) are compared with the
runs the ledger holds open: a new run is recorded, and a run recorded before and no longer seen
is closed at its real end when the pool can tell it (the job ad's completion date in the schedd's
history, or its last eviction: :meth:`RunEnds.run_ends`), else at the time of the cycle; a run
whose schedd does not answer stays open until it does (at most :data:`MAX_UNANSWERED` cycles). Runs
that ended while the factory was down are closed the same way on its first cycle back, and so
is a run whose pilot has ended even while a stale slot ad still shows it. Accounting then tells core-hours
used from core-hours wasted. The open runs are kept in memory between cycles, so a cycle writes
only the runs that began or ended; they are read again from the ledger whenever the loop reads
its live pilots again (``generation``: another factory may have written in between).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Protocol, runtime_checkable

from ..errors import PoolError
from ..ledger import Ledger
from ..ledger.accounting import JobRun, open_job_runs, record_pilot_jobs, recorded_runs
from ..pool.htcondor import FinishedRun, RunningJob

__all__ = ["FinishedRuns", "JobSource", "JobTracker", "RunEnds"]

log = logging.getLogger(__name__)

#: the longest look back for runs never seen (at a start after a long stop)
MAX_LOOK_BACK_S = 7 * 86400.0
#: cycles a run whose schedd does not answer stays open before it is closed at the cycle's time
MAX_UNANSWERED = 10

_Key = tuple[str, str, float]


class JobSource(Protocol):
    def running_jobs(self) -> list[RunningJob]: ...


@runtime_checkable
class RunEnds(Protocol):
    """A job source that can also tell when runs ended (HTCondor: the schedds' job ads)."""

    def run_ends(self, runs: list[_Key]) -> dict[_Key, float | bool | None]: ...


@runtime_checkable
class FinishedRuns(Protocol):
    """A job source that can list runs that ended since a time (HTCondor: the schedds' history),
    seen running or not."""

    def finished_runs(self, since: float) -> list[FinishedRun]: ...


def _key(run: JobRun | RunningJob) -> _Key:
    return (run.pilot_id, run.job_id, run.started_at)


class JobTracker:
    """Keeps the ledger's job runs in step with the pool."""

    def __init__(self, source: JobSource) -> None:
        self.source = source
        self._open: dict[_Key, JobRun] | None = None
        self._generation: int | None = None
        self._since: float | None = None  # runs that ended after this are looked up in the history
        self._unanswered: dict[_Key, int] = {}  # runs whose schedd did not answer, and how often
        #: pilots whose dynamic slots ran a job at the last read (empty when it failed): a
        #: partitionable slot's own ad can lag its claims at a loaded collector
        self.busy_pilots: frozenset[str] = frozenset()
        #: runs closed at the last update (the runtimes learned from them may have changed)
        self.ended_runs = 0
        #: the job groups of the runs the last update wrote with an end
        self.ended_groups: frozenset[str] = frozenset()

    def update(
        self,
        ledger: Ledger,
        factory: str,
        now: float,
        *,
        generation: int | None = None,
        live: Collection[str] | None = None,
        since: float | None = None,
        group_of: Callable[[str], str | None] | None = None,
    ) -> int:
        """Record new runs and close finished ones; returns how many ledger rows changed.

        ``live``: the ids of this factory's live pilots, when the caller knows them (known to be
        ours without a lookup in the ledger). A job slot of a pilot that has ended is not a run
        going on (a startd killed with its batch job leaves its ads in the collector until they
        expire): its run is closed from the job's own ad.
        ``since``: the oldest live pilot's start, where the first look in the history begins.
        ``group_of``: the job group a job (by its id) was idle in, recorded with a new run.
        """
        self.busy_pilots = frozenset()
        self.ended_runs, self.ended_groups = 0, frozenset()
        running = self.source.running_jobs()
        if live is not None:
            running = [j for j in running if j.pilot_id in live]
        self.busy_pilots = frozenset(j.pilot_id for j in running)
        if self._open is None or generation != self._generation:
            self._open = {_key(r): r for r in open_job_runs(ledger, factory)}
            self._generation = generation
        opened = self._open
        fresh = [j for j in running if _key(j) not in opened]
        # the live pilots are this factory's (they were read from the ledger): only others are looked up
        ask = {j.pilot_id for j in fresh if live is None or j.pilot_id not in live}
        known = (ledger.known_pilot_ids(factory, ask) if ask else set()) | ({j.pilot_id for j in fresh} - ask)
        new = [
            JobRun(j.pilot_id, j.job_id, j.owner, j.route, j.started_at, None, j.cpus, group_of and group_of(j.job_id))
            for j in fresh
            if j.pilot_id in known
        ]
        current = {_key(j) for j in running}
        gone = [k for k in opened if k not in current]
        ends: dict[_Key, float | bool | None] = {}
        if gone and isinstance(self.source, RunEnds):
            ends = self.source.run_ends(gone)
        closed = []
        for k in gone:
            end = ends.get(k)
            if end is False:  # its job ad says it still runs there: the collector missed its slot
                continue
            if k in ends and end is None:  # its schedd did not answer: ask again next cycle
                self._unanswered[k] = tries = self._unanswered.get(k, 0) + 1
                if tries < MAX_UNANSWERED:
                    continue
            self._unanswered.pop(k, None)
            at = now if end is None or end is True else min(now, float(end))
            closed.append(replace(opened[k], ended_at=max(at, opened[k].started_at)))
        seen = {(k[0], k[1]) for k in opened} | {(j.pilot_id, j.job_id) for j in running}
        unseen = self._unseen(ledger, factory, now, since, seen, group_of)
        if not new and not closed and not unseen:
            return 0
        groups: set[str] = set()
        try:
            changed = record_pilot_jobs(ledger, new + closed + unseen, ended_groups=groups)
        except Exception:
            self._open = None  # read them again next cycle
            raise
        self.ended_runs, self.ended_groups = len(closed) + len(unseen), frozenset(groups)
        for r in closed:
            opened.pop(_key(r), None)
        opened.update((_key(r), r) for r in new)
        return changed

    def running_by_group(self) -> dict[str, list[float]]:
        """Job group -> start times of its jobs running on our pilots, as of the last update
        (runs of no known group left out; empty before the first update)."""
        out: dict[str, list[float]] = {}
        for run in (self._open or {}).values():
            if run.job_group:
                out.setdefault(run.job_group, []).append(run.started_at)
        return out

    def _unseen(
        self,
        ledger: Ledger,
        factory: str,
        now: float,
        since: float | None,
        seen: set[tuple[str, str]],
        group_of: Callable[[str], str | None] | None = None,
    ) -> list[JobRun]:
        """Runs on our pilots that ended without ever being seen running: they began and ended
        between two looks, or while the factory was down (from the schedds' history)."""
        if not isinstance(self.source, FinishedRuns):
            return []
        start = self._since if self._since is not None else (since if since is not None else now)
        start = max(start, now - MAX_LOOK_BACK_S)
        try:
            finished = self.source.finished_runs(start)
        except PoolError as exc:  # looked up again from the same time at the next cycle
            log.warning("cannot read finished jobs: %s", exc)
            return []
        self._since = now
        fresh = {(r.job.pilot_id, r.job.job_id): r for r in finished if (r.job.pilot_id, r.job.job_id) not in seen}
        if not fresh:
            return []
        known = ledger.known_pilot_ids(factory, {p for p, _ in fresh})
        fresh = {k: r for k, r in fresh.items() if k[0] in known}
        done = recorded_runs(ledger, fresh) if fresh else set()
        return [
            JobRun(
                j.pilot_id,
                j.job_id,
                j.owner,
                j.route,
                j.started_at,
                min(r.ended_at, now),
                j.cpus,
                group_of and group_of(j.job_id),
            )
            for k, r in sorted(fresh.items())
            if k not in done
            for j in (r.job,)
        ]
