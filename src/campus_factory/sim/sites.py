"""Simulated sites: the in-memory batch site of :mod:`providers.fake`, with a site's habits.

:class:`SimSite` keeps :class:`~campus_factory.providers.fake.FakeProvider`'s contract (submit,
observe, cancel; finished jobs leave the queue listing after ``min_job_age``) and adds what a
real site does to pilots, on the simulator's clock and event queue:

* each pilot waits in the queue for a time drawn from a lognormal (``queue_wait_s`` median,
  ``queue_wait_sigma`` spread), then starts when the site runs fewer than ``capacity`` of our
  pilots, counted in cores of whole slots (``capacity = 40`` with 16-core slots: 640 cores in
  pilots of any size, as a batch system schedules cores, not jobs)
  pilots (the rest wait, first come first served);
* a started pilot boots for ``boot_s`` before its startd joins the pool, or fails before
  joining with probability ``failure_rate`` (the batch job ends FAILED);
* it is preempted (CANCELLED) after an exponential time of rate ``preempt_per_hour``;
* it ends by itself at its walltime minus the batch ``term_margin`` (COMPLETED), or earlier
  when the pool side says its startd left (idle timeout, drained).

Cost per core-hour, walltime and idle timeout are the site's config values.
"""

from __future__ import annotations

import functools
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..config import SiteConfig
from ..providers.base import JobState, Observation, Submission, SubmittedPilot
from ..providers.fake import FakeJob, FakeProvider

__all__ = ["SimSite", "SiteEvents", "SiteModel"]


@dataclass(frozen=True)
class SiteModel:
    """How a simulated site treats pilots (what the config does not say)."""

    queue_wait_s: float = 120.0
    queue_wait_sigma: float = 0.5
    boot_s: float = 60.0
    capacity: int | None = None
    preempt_per_hour: float = 0.0
    failure_rate: float = 0.0
    fail_after_s: float = 30.0

    def start_latency_s(self) -> float:
        """Median time from submission to a joined startd (queue wait + boot)."""
        return self.queue_wait_s + self.boot_s


class SiteEvents(Protocol):
    """What a simulated site asks of the simulation."""

    def schedule(self, at: float, fn: Callable[[], None]) -> None: ...
    def pilot_joined(self, site: SimSite, job: FakeJob) -> None: ...
    def pilot_ended(self, site: SimSite, job: FakeJob) -> None: ...


class SimSite(FakeProvider):
    """A batch site or cloud on the simulated clock; the simulation moves its jobs."""

    def __init__(
        self,
        config: SiteConfig,
        model: SiteModel,
        *,
        clock: Callable[[], float],
        events: SiteEvents,
        seed: int = 1,
    ) -> None:
        super().__init__(config.name, clock=clock, start_delay=0.0, min_job_age=300.0, capacity=None)
        #: cores the site runs for us at once (None: no limit)
        self.core_capacity = None if model.capacity is None else model.capacity * max(config.slot.cpus, 1)
        self.running_cores = 0
        self.pending_cores = 0
        self.config = config
        self.model = model
        self.events = events
        self.rng = random.Random(f"{seed}:{config.name}")
        self.running = 0
        self.pending = 0
        self.peak_running = 0
        self.archive: dict[str, FakeJob] = {}
        self.started_at: dict[str, float] = {}
        #: what each pilot asked for: (cpus, memory MB, disk MB, GPUs), by job id
        self.sizes: dict[str, tuple[int, int, int, int]] = {}
        self._blocked: deque[str] = deque()

    # the simulation moves jobs through their states; observe only reports them
    def _advance(self) -> None:
        return None

    def _wait(self) -> float:
        m = self.model
        if m.queue_wait_sigma <= 0 or m.queue_wait_s <= 0:
            return max(0.0, m.queue_wait_s)
        return self.rng.lognormvariate(math.log(m.queue_wait_s), m.queue_wait_sigma)

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        out = await super().submit(submission)
        now = self.clock()
        self.pending += len(out)
        asked = {r.pilot_id: (r.cpus, r.memory_mb, r.disk_mb, r.gpus) for r in submission.pilots}
        self.pending_cores += sum(asked[sp.pilot_id][0] for sp in out)
        for sp in out:
            self.sizes[sp.job_id] = asked[sp.pilot_id]
            self.events.schedule(now + self._wait(), functools.partial(self._ready, sp.job_id))
        return out

    def _ready(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.state is not JobState.PENDING:
            return
        while self._blocked and not self._pending(self._blocked[0]):
            self._blocked.popleft()  # cancelled while waiting
        if self._blocked or not self._room(job_id):
            self._blocked.append(job_id)  # first come, first served
            return
        self._start(job)

    def _pending(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        return job is not None and job.state is JobState.PENDING

    def _cores(self, job_id: str) -> int:
        size = self.sizes.get(job_id)
        return size[0] if size is not None else self.config.slot.cpus

    def _room(self, job_id: str) -> bool:
        return self.core_capacity is None or self.running_cores + self._cores(job_id) <= self.core_capacity

    def _start(self, job: FakeJob) -> None:
        now = self.clock()
        job.state = JobState.RUNNING
        self.pending -= 1
        self.pending_cores -= self._cores(job.job_id)
        self.started_at[job.job_id] = now
        self.running += 1
        self.running_cores += self._cores(job.job_id)
        self.peak_running = max(self.peak_running, self.running)
        m, jid = self.model, job.job_id
        if self.rng.random() < m.failure_rate:
            self.events.schedule(now + m.fail_after_s, lambda: self._end(jid, JobState.FAILED, 1))
        else:
            self.events.schedule(now + m.boot_s, lambda: self._join(jid))
        end = now + max(60.0, self.config.walltime - self.config.batch.term_margin)
        if m.preempt_per_hour > 0:
            at = now + self.rng.expovariate(m.preempt_per_hour / 3600.0)
            if at < end:
                self.events.schedule(at, lambda: self._end(jid, JobState.CANCELLED, 143))
        self.events.schedule(end, lambda: self._end(jid, JobState.COMPLETED, 0))

    def _join(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state is JobState.RUNNING:
            self.events.pilot_joined(self, job)

    def _end(self, job_id: str, state: JobState, exit_code: int) -> None:
        job = self.jobs.get(job_id)
        if job is not None and job.state is JobState.RUNNING:
            self.finish(job_id, state, exit_code)

    def leave(self, job_id: str) -> None:
        """The pilot's startd left by itself (idle timeout, drained): its batch job completes."""
        self._end(job_id, JobState.COMPLETED, 0)

    def finish(self, job_id: str, state: JobState = JobState.COMPLETED, exit_code: int = 0) -> None:
        job = self.jobs[job_id]
        if job.state.finished:
            return
        was_running = job.state is JobState.RUNNING
        if job.state is JobState.PENDING:
            self.pending -= 1
            self.pending_cores -= self._cores(job_id)
        super().finish(job_id, state, exit_code)
        if was_running:
            self.running -= 1
            self.running_cores -= self._cores(job_id)
            self.events.pilot_ended(self, job)
            while self._blocked:
                if not self._pending(self._blocked[0]):
                    self._blocked.popleft()
                elif self._room(self._blocked[0]):
                    self._start(self.jobs[self._blocked.popleft()])
                else:
                    break

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        self._prune()
        return await super().observe(job_ids, tag_prefix)

    def _prune(self, keep_s: float = 3600.0) -> None:
        """Move jobs that ended long ago out of the listing (the loop recorded their end)."""
        if len(self.jobs) < 256:
            return
        cutoff = self.clock() - max(keep_s, self.min_job_age)
        old = [k for k, j in self.jobs.items() if j.ended_at is not None and j.ended_at < cutoff]
        for k in old:
            self.archive[k] = self.jobs.pop(k)
