"""Fakes shared by the loop's tests: a settable clock and the pool's job reads.

:class:`Jobs` stands for :class:`campus_factory.pool.htcondor.HTCondorJobs` as the loop's job
tracker uses it: the jobs on pilots as the collector lists them, and the ends the schedds'
history gives for runs asked about (``None``: the schedd did not answer for that run).
:class:`History` adds the history of finished jobs since a time (HTCondor's ``since``).
"""

from __future__ import annotations

from campus_factory.errors import PoolError
from campus_factory.pool.htcondor import FinishedRun, RunningJob

__all__ = ["Clock", "History", "Jobs", "Key"]

#: a run as the tracker asks about it: (schedd, job id, start)
Key = tuple[str, str, float]


class Clock:
    """A clock the test moves by setting ``t``."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Jobs:
    """Jobs on pilots as the collector lists them, and their ends as the schedd's history has them."""

    def __init__(self) -> None:
        self.running: list[RunningJob] = []
        self.ends: dict[Key, float | bool | None] = {}
        self.asked: list[list[Key]] = []

    def running_jobs(self) -> list[RunningJob]:
        return list(self.running)

    def run_ends(self, runs: list[Key]) -> dict[Key, float | bool | None]:
        self.asked.append(list(runs))
        return {k: v for k, v in self.ends.items() if k in runs}


class History(Jobs):
    """As :class:`Jobs`, and the schedds' history of finished jobs (``since`` as HTCondor's)."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[FinishedRun] = []
        self.since: list[float] = []
        self.fail = False

    def finished_runs(self, since: float) -> list[FinishedRun]:
        if self.fail:
            raise PoolError("schedd down")
        self.since.append(since)
        return [r for r in self.finished if r.ended_at >= since]
