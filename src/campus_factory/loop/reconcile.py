"""Reconciliation: what a site and the pool report, turned into ledger events. Pure.

Given a site's live pilots (from the ledger), the site's observation (job statuses and jobs
carrying this factory's tag) and the pilots' slots in the pool, :func:`reconcile` returns the
ledger updates and the strangers to cancel:

* a known job's state becomes its pilot's event (a requested pilot seen pending is submitted),
  unless it would leave the pilot as it is (a queued pilot seen pending again);
* a job with our tag whose submission and array index match a ``requested`` pilot is adopted
  (the factory died between the submission and the ledger write);
* a job with our tag unknown to the ledger is a stranger, cancelled once it has been seen for
  ``stranger_grace`` seconds (0 for batch sites; clouds give instances a grace period); one whose
  pilot the ledger knows as already ended (``ended``) is cancelled without that grace; a running
  stranger is never cancelled on the strength of one read: it must be seen in two;
* one read is not evidence that a pilot is gone: a pilot neither in the queue nor in accounting
  is declared gone only once :data:`GONE_READS` reads over at least :data:`GONE_AFTER_S` seconds
  agree (accounting lags: SGE writes its record seconds after the job leaves ``qstat``); a read in
  which most live pilots suddenly vanish is a failed read of the site (``failed_read``): nothing
  of it is applied;
* a requested pilot never seen at the site after ``submission_grace`` failed;
* a pilot whose startd is in the pool joined;
* a cloud pilot running without joining for ``join_timeout`` is a black hole: cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

from ..errors import InvalidTransition
from ..ledger import PilotEvent, PilotRecord, PilotState, Update, next_state
from ..providers.base import JobState, JobStatus, Observation

__all__ = [
    "EVENT_OF",
    "GONE_AFTER_S",
    "GONE_READS",
    "ReadMemory",
    "Reconciliation",
    "duplicate_job_ids",
    "reconcile",
    "tag_pattern",
]

#: reads that must agree, and seconds they must span, before a pilot missing from the queue and
#: from accounting is declared gone
GONE_READS = 2
GONE_AFTER_S = 20.0

EVENT_OF: Mapping[JobState, PilotEvent] = {
    JobState.PENDING: PilotEvent.PENDING,
    JobState.RUNNING: PilotEvent.STARTED,
    JobState.COMPLETED: PilotEvent.COMPLETED,
    JobState.FAILED: PilotEvent.FAILED,
    JobState.CANCELLED: PilotEvent.CANCELLED,
    JobState.GONE: PilotEvent.GONE,
}
#: events after which a pilot is still alive
_NOT_FINAL = frozenset({PilotEvent.PENDING, PilotEvent.STARTED, PilotEvent.SUBMITTED, PilotEvent.JOINED})
#: events that end a pilot: recorded at the site's end time when it gives one
_ENDS = frozenset({PilotEvent.COMPLETED, PilotEvent.FAILED, PilotEvent.CANCELLED})
#: states from which a startd ad in the collector means the pilot joined
_CAN_JOIN = frozenset({PilotState.QUEUED, PilotState.RUNNING})


def _no_op(state: PilotState, event: PilotEvent) -> bool:
    try:
        return next_state(state, event) is state
    except InvalidTransition:
        return False  # the ledger says what is wrong


def duplicate_job_ids(job_ids: Sequence[str], live: Sequence[PilotRecord]) -> list[str]:
    """Job ids of a submission's answer that another live pilot of the site holds, or that the
    answer gives twice: a site (or a wrapper) answering the same id twice must never make two
    pilots share one job."""
    held = {p.job_id for p in live if p.job_id}
    return sorted({j for j in job_ids if j in held or job_ids.count(j) > 1})


def tag_pattern(tag_prefix: str) -> re.Pattern[str]:
    """Matches exactly this factory's tags (``cf-<factory>-<10 hex>``), not a longer factory name's."""
    return re.compile(rf"^{re.escape(tag_prefix)}([0-9a-f]{{10}})\Z")  # \Z: no trailing newline


def _detail(st: JobStatus) -> str:
    parts = [f"{st.native_state or st.state.value}"]
    if st.exit_code is not None:
        parts.append(f"exit {st.exit_code}")
    if st.reason:
        parts.append(st.reason)
    if st.from_accounting:
        parts.append("(from accounting)")
    return ", ".join(parts)


@dataclass
class Reconciliation:
    updates: list[Update] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)
    black_holes: list[PilotRecord] = field(default_factory=list)
    adopted: int = 0
    #: why this read is not evidence of anything ("" when it is): nothing of it was applied
    failed_read: str = ""


@dataclass
class ReadMemory:
    """What earlier reads of one site said: since when (and in how many reads) each job has been
    missing, and in how many reads each running stranger has been seen. Kept by the loop."""

    missing: dict[str, tuple[float, int]] = field(default_factory=dict)
    strangers: dict[str, int] = field(default_factory=dict)


def _confirmed_gone(
    live: Sequence[PilotRecord], obs: Observation, now: float, memory: ReadMemory
) -> tuple[set[str], str]:
    """Job ids whose absence enough reads confirm, and why the read failed ("" when it did not)."""
    with_job = {p.job_id for p in live if p.job_id}
    absent = {j for j, st in obs.statuses.items() if st.state is JobState.GONE and j in with_job}
    fresh = {j for j in absent if j not in memory.missing}
    for j in list(memory.missing):
        if j not in absent:
            del memory.missing[j]
    for j in absent:
        since, reads = memory.missing.get(j, (now, 0))
        memory.missing[j] = (since, reads + 1)
    if len(fresh) >= 2 and 2 * len(fresh) > len(with_job):
        why = (
            f"{len(fresh)} of {len(with_job)} live pilots are suddenly missing from the queue and from "
            "accounting: a failed read, not evidence; nothing is changed until another read agrees"
        )
        return set(), why
    sure = {j for j in absent if memory.missing[j][1] >= GONE_READS and now - memory.missing[j][0] >= GONE_AFTER_S}
    return sure, ""


def reconcile(
    live: Sequence[PilotRecord],
    obs: Observation,
    tag: re.Pattern[str],
    now: float,
    *,
    joined: Mapping[str, str],
    submission_grace: float,
    stranger_grace: float = 0.0,
    first_seen: MutableMapping[str, float] | None = None,
    join_timeout: float | None = None,
    ended: Mapping[tuple[str, int | None], PilotRecord] | None = None,
    memory: ReadMemory | None = None,
    joined_at: Mapping[str, float] | None = None,
) -> Reconciliation:
    """Ledger updates and cancellations for one site. ``joined`` maps pilot ids in the pool to
    their startd name, ``joined_at`` to when their startd started (its ad's DaemonStartTime: the
    join is recorded then, not at the cycle that saw it); ``first_seen`` remembers when each
    stranger was first seen (updated);
    ``memory`` what earlier reads said (updated; a fresh one when None: a single read)."""
    out = Reconciliation()
    memory = memory if memory is not None else ReadMemory()
    gone, out.failed_read = _confirmed_gone(live, obs, now, memory)
    if out.failed_read:
        return out
    by_job = {p.job_id: p for p in live if p.job_id}
    for job_id, st in obs.statuses.items():
        event = EVENT_OF.get(st.state)
        known = by_job.get(job_id)
        if event is None or known is None or (st.state is JobState.GONE and job_id not in gone):
            continue
        if known.state is PilotState.REQUESTED and event is PilotEvent.PENDING:
            event = PilotEvent.SUBMITTED
        if _no_op(known.state, event):  # as it was: nothing to write (most pilots, most cycles)
            continue
        at = st.ended_at if event in _ENDS else (st.started_at if event is PilotEvent.STARTED else None)
        out.updates.append(Update(known.pilot_id, event, _detail(st), exit_code=st.exit_code, at=at))
    requested: dict[tuple[str, int | None], PilotRecord] = {
        (p.submission_id, p.array_index): p for p in live if p.state is PilotState.REQUESTED
    }
    seen = first_seen if first_seen is not None else {}
    sightings = {st.job_id: memory.strangers.get(st.job_id, 0) + 1 for st in obs.tagged if st.job_id not in by_job}
    memory.strangers = sightings
    for st in obs.tagged:
        if st.job_id in by_job:
            continue
        m = tag.match(st.tag)
        if m is None:
            continue  # another factory's tag that merely shares our prefix
        pilot = requested.pop((m.group(1), st.array_index), None)
        if pilot is not None:
            event = EVENT_OF.get(st.state, PilotEvent.PENDING)
            if event is PilotEvent.PENDING:
                event = PilotEvent.SUBMITTED
            out.updates.append(Update(pilot.pilot_id, event, f"adopted job {st.job_id}", job_id=st.job_id))
            out.adopted += 1
        elif not st.state.finished:
            since = seen.setdefault(st.job_id, now)
            if st.state is not JobState.PENDING and sightings[st.job_id] < 2:
                continue  # a running job is never cancelled on the strength of one read
            # a job whose pilot is known and already over (e.g. a submission that timed out but
            # went through) is garbage: no grace
            if (ended and (m.group(1), st.array_index) in ended) or now - since >= stranger_grace:
                out.strangers.append(st.job_id)
    for pilot in requested.values():
        if pilot.job_id is None and now - pilot.created_at >= submission_grace:
            out.updates.append(Update(pilot.pilot_id, PilotEvent.LOST_SUBMISSION, "never seen at the site"))
    finishing = {u.pilot_id for u in out.updates if u.event not in _NOT_FINAL}
    started = {u.pilot_id for u in out.updates if u.event is PilotEvent.STARTED}
    for p in live:
        if p.pilot_id in finishing:
            continue
        name = joined.get(p.pilot_id)
        if name is not None and p.state in _CAN_JOIN:
            at = joined_at.get(p.pilot_id) if joined_at else None
            out.updates.append(Update(p.pilot_id, PilotEvent.JOINED, f"startd {name} in the pool", at=at))
        elif (
            name is None
            and join_timeout is not None
            and p.joined_at is None
            and (p.state is PilotState.RUNNING or p.pilot_id in started)
            and p.started_at is not None
            and now - p.started_at >= join_timeout
        ):
            out.black_holes.append(p)
    return out
