"""Which jobs ran on which pilot: the ledger's record of pilot use, from the pool.

Each cycle the jobs running on this factory's pilots (their dynamic slots) are compared with the
runs the ledger holds open: a new run is recorded, and a run recorded before and no longer seen
is closed at the time of the cycle (the precision is one cycle). Accounting then tells core-hours
used from core-hours wasted. The open runs are kept in memory between cycles, so a cycle writes
only the runs that began or ended; they are read again from the ledger whenever the loop reads
its live pilots again (``generation``: another factory may have written in between).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from ..ledger import Ledger
from ..ledger.accounting import JobRun, open_job_runs, record_pilot_jobs
from ..pool.htcondor import RunningJob

__all__ = ["JobSource", "JobTracker"]

_Key = tuple[str, str, float]


class JobSource(Protocol):
    def running_jobs(self) -> list[RunningJob]: ...


def _key(run: JobRun | RunningJob) -> _Key:
    return (run.pilot_id, run.job_id, run.started_at)


class JobTracker:
    """Keeps the ledger's job runs in step with the pool."""

    def __init__(self, source: JobSource) -> None:
        self.source = source
        self._open: dict[_Key, JobRun] | None = None
        self._generation: int | None = None

    def update(self, ledger: Ledger, factory: str, now: float, *, generation: int | None = None) -> int:
        """Record new runs and close finished ones; returns how many ledger rows changed."""
        running = self.source.running_jobs()
        if self._open is None or generation != self._generation:
            self._open = {_key(r): r for r in open_job_runs(ledger, factory)}
            self._generation = generation
        opened = self._open
        fresh = [j for j in running if _key(j) not in opened]
        known = ledger.known_pilot_ids(factory, {j.pilot_id for j in fresh}) if fresh else set()
        new = [
            JobRun(j.pilot_id, j.job_id, j.owner, j.route, j.started_at, None, j.cpus)
            for j in fresh
            if j.pilot_id in known
        ]
        current = {_key(j) for j in running}
        closed = [replace(r, ended_at=max(now, r.started_at)) for k, r in opened.items() if k not in current]
        if not new and not closed:
            return 0
        try:
            changed = record_pilot_jobs(ledger, new + closed)
        except Exception:
            self._open = None  # read them again next cycle
            raise
        for r in closed:
            opened.pop(_key(r), None)
        opened.update((_key(r), r) for r in new)
        return changed
