"""An in-memory site that behaves like a batch scheduler, for unit tests and the simulator.

It keeps the real thing's habits: jobs wait ``start_delay`` seconds before running, a finished
job stays in the queue listing for ``min_job_age`` seconds and then only accounting knows it,
a graceful cancel of a running job ends it COMPLETED (the pilot traps TERM), a plain cancel
ends it CANCELLED, and cancelling an unknown id is silently accepted (as ``scancel`` does).
Failures are injected with :attr:`FakeProvider.fail_submit` and :attr:`FakeProvider.fail_observe`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ProviderError, SubmitError
from .base import CancelResult, JobState, JobStatus, Observation, Submission, SubmittedPilot

__all__ = ["FakeJob", "FakeProvider"]


@dataclass
class FakeJob:
    job_id: str
    tag: str
    pilot_id: str
    array_index: int | None
    submitted_at: float
    state: JobState = JobState.PENDING
    ended_at: float | None = None
    exit_code: int | None = None
    started_at: float | None = None


class FakeProvider:
    """A batch site in memory; ``clock`` is injectable so a simulator can drive it."""

    def __init__(
        self,
        site: str,
        *,
        clock: Callable[[], float] = time.time,
        start_delay: float = 0.0,
        min_job_age: float = 300.0,
        capacity: int | None = None,
    ) -> None:
        self.site = site
        self.clock = clock
        self.start_delay = start_delay
        self.min_job_age = min_job_age
        self.capacity = capacity
        self.jobs: dict[str, FakeJob] = {}
        self.fail_submit: str | None = None
        self.fail_observe: str | None = None
        self.submit_calls = 0
        self.observe_calls = 0
        self._next = 1
        self._statuses: dict[str, tuple[tuple[JobState, int | None, bool, float | None], JobStatus]] = {}

    # -- helpers for tests ---------------------------------------------------------------
    def _advance(self) -> None:
        now = self.clock()
        running = sum(1 for j in self.jobs.values() if j.state is JobState.RUNNING)
        for job in sorted(self.jobs.values(), key=lambda j: j.submitted_at):
            if job.state is JobState.PENDING and now - job.submitted_at >= self.start_delay:
                if self.capacity is not None and running >= self.capacity:
                    continue
                job.state = JobState.RUNNING
                # it started when its wait was over (or, held by the capacity, when it was noticed)
                job.started_at = job.submitted_at + self.start_delay if self.capacity is None else now
                running += 1

    def finish(self, job_id: str, state: JobState = JobState.COMPLETED, exit_code: int = 0) -> None:
        job = self.jobs[job_id]
        job.state, job.ended_at, job.exit_code = state, self.clock(), exit_code

    def active(self) -> list[FakeJob]:
        self._advance()
        return [j for j in self.jobs.values() if not j.state.finished]

    # -- the contract -----------------------------------------------------------------------
    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        self.submit_calls += 1
        if self.fail_submit:
            raise SubmitError(f"{self.site}: {self.fail_submit}", site=self.site)
        base = str(self._next)
        self._next += 1
        n = len(submission.pilots)
        out = []
        for i, pilot in enumerate(submission.pilots):
            job_id = base if n == 1 else f"{base}_{i}"
            self.jobs[job_id] = FakeJob(job_id, submission.tag, pilot.pilot_id, None if n == 1 else i, self.clock())
            out.append(SubmittedPilot(pilot.pilot_id, job_id))
        return out

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        self.observe_calls += 1
        if self.fail_observe:
            raise ProviderError(f"{self.site}: {self.fail_observe}", site=self.site)
        self._advance()
        now = self.clock()

        def status(job: FakeJob, accounting: bool) -> JobStatus:
            key = (job.state, job.exit_code, accounting, job.ended_at)
            hit = self._statuses.get(job.job_id)
            if hit is not None and hit[0] == key:  # a listing line parsed before: same status
                return hit[1]
            st = JobStatus(
                job.job_id,
                job.state,
                native_state=job.state.name,
                tag=job.tag,
                array_index=job.array_index,
                exit_code=job.exit_code,
                from_accounting=accounting,
                started_at=job.started_at,
                ended_at=job.ended_at if job.state.finished else None,
            )
            self._statuses[job.job_id] = (key, st)
            return st

        queue = {j.job_id: j for j in self.jobs.values() if j.ended_at is None or now - j.ended_at < self.min_job_age}
        statuses = {}
        for job_id in job_ids:
            if job_id in queue:
                statuses[job_id] = status(queue[job_id], False)
            elif job_id in self.jobs:
                statuses[job_id] = status(self.jobs[job_id], True)
            else:
                statuses[job_id] = JobStatus(job_id, JobState.GONE, reason="unknown job")
        tagged = [status(j, False) for j in queue.values() if j.tag.startswith(tag_prefix)]
        return Observation(statuses=statuses, tagged=tagged)

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        self._advance()
        for job_id in job_ids:
            job = self.jobs.get(job_id)
            if job is None or job.state.finished:
                continue
            if graceful and job.state is JobState.RUNNING:
                self.finish(job_id, JobState.COMPLETED, 0)
            else:
                self.finish(job_id, JobState.CANCELLED, 0)
        return [CancelResult(j, True) for j in job_ids]
