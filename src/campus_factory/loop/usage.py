"""Which jobs ran on which pilot: the ledger's record of pilot use, from the pool.

Each cycle the jobs running on this factory's pilots (their dynamic slots) are recorded as open
runs; a run recorded before and no longer seen is closed at the time of the cycle. Accounting
then tells core-hours used from core-hours wasted. The precision is one cycle.
"""

from __future__ import annotations

from typing import Protocol

from ..ledger import Ledger
from ..ledger.accounting import JobRun, open_job_runs, record_pilot_jobs
from ..pool.htcondor import RunningJob

__all__ = ["JobSource", "JobTracker"]


class JobSource(Protocol):
    def running_jobs(self) -> list[RunningJob]: ...


class JobTracker:
    """Keeps the ledger's job runs in step with the pool."""

    def __init__(self, source: JobSource) -> None:
        self.source = source

    def update(self, ledger: Ledger, factory: str, now: float) -> int:
        running = self.source.running_jobs()
        known = {p.pilot_id for p in ledger.pilots(factory=factory)} if running else set()
        runs = [
            JobRun(j.pilot_id, j.job_id, j.owner, j.route, j.started_at, None, j.cpus)
            for j in running
            if j.pilot_id in known
        ]
        current = {(r.pilot_id, r.job_id, r.started_at) for r in runs}
        closed = [
            JobRun(r.pilot_id, r.job_id, r.owner, r.route, r.started_at, max(now, r.started_at), r.cpus)
            for r in open_job_runs(ledger, factory)
            if (r.pilot_id, r.job_id, r.started_at) not in current
        ]
        return record_pilot_jobs(ledger, runs + closed)
