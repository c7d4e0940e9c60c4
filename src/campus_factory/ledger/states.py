"""The pilot lifecycle: an explicit transition table and a pure :func:`next_state`.

::

    requested ──submitted──▶ queued ──started──▶ running ──joined──▶ joined
        │                      │                   │                   │
        │                      └──── leave ────────┴──── leave ────────┴──▶ retiring
        ▼                                                                      │
      failed ◀── submit_failed / lost_submission                               │
                                                                               ▼
    any live state ── completed ▶ ended │ failed ▶ failed │ cancelled ▶ cancelled │ gone ▶ lost

``requested`` is written before the site is asked, so a crash between the two leaves a row the
next cycle can match to the job the site reports (``started``/``pending`` adopt it) or fail after
a grace period (``lost_submission``). Terminal states never change again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from ..errors import InvalidTransition

__all__ = ["LIVE", "TERMINAL", "TRANSITIONS", "PilotEvent", "PilotState", "next_state"]


class PilotState(enum.StrEnum):
    REQUESTED = "requested"  # recorded, submission under way
    QUEUED = "queued"  # the site accepted it; waiting in its queue
    RUNNING = "running"  # the batch job or VM runs
    JOINED = "joined"  # its startd is in the pool
    RETIRING = "retiring"  # asked to leave
    ENDED = "ended"  # left by itself or when asked
    FAILED = "failed"  # refused, or ended with an error
    CANCELLED = "cancelled"  # removed before it finished its work
    LOST = "lost"  # the site knows nothing of it any more


class PilotEvent(enum.StrEnum):
    SUBMITTED = "submitted"  # the site returned a job id
    SUBMIT_FAILED = "submit_failed"
    LOST_SUBMISSION = "lost_submission"  # requested, never seen at the site after the grace
    PENDING = "pending"  # the site reports it waiting
    STARTED = "started"  # the site reports it running
    JOINED = "joined"  # its startd ad appeared in the collector
    LEAVE = "leave"  # the factory asked it to leave
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    GONE = "gone"  # neither in the queue nor in accounting


S, E = PilotState, PilotEvent

TERMINAL = frozenset({S.ENDED, S.FAILED, S.CANCELLED, S.LOST})
LIVE = frozenset(set(S) - TERMINAL)

_FINISH: Mapping[PilotEvent, PilotState] = {
    E.COMPLETED: S.ENDED,
    E.FAILED: S.FAILED,
    E.CANCELLED: S.CANCELLED,
    E.GONE: S.LOST,
}

TRANSITIONS: Mapping[tuple[PilotState, PilotEvent], PilotState] = {
    (S.REQUESTED, E.SUBMITTED): S.QUEUED,
    (S.REQUESTED, E.SUBMIT_FAILED): S.FAILED,
    (S.REQUESTED, E.LOST_SUBMISSION): S.FAILED,
    (S.REQUESTED, E.PENDING): S.QUEUED,
    (S.REQUESTED, E.STARTED): S.RUNNING,
    (S.REQUESTED, E.LEAVE): S.RETIRING,
    (S.QUEUED, E.PENDING): S.QUEUED,
    (S.QUEUED, E.STARTED): S.RUNNING,
    (S.QUEUED, E.JOINED): S.JOINED,
    (S.QUEUED, E.LEAVE): S.RETIRING,
    (S.RUNNING, E.PENDING): S.QUEUED,  # requeued by the site
    (S.RUNNING, E.STARTED): S.RUNNING,
    (S.RUNNING, E.JOINED): S.JOINED,
    (S.RUNNING, E.LEAVE): S.RETIRING,
    (S.JOINED, E.STARTED): S.JOINED,
    (S.JOINED, E.JOINED): S.JOINED,
    (S.JOINED, E.PENDING): S.QUEUED,  # requeued by the site
    (S.JOINED, E.LEAVE): S.RETIRING,
    (S.RETIRING, E.PENDING): S.RETIRING,
    (S.RETIRING, E.STARTED): S.RETIRING,
    (S.RETIRING, E.JOINED): S.RETIRING,
    (S.RETIRING, E.LEAVE): S.RETIRING,
    **{(state, event): end for state in LIVE for event, end in _FINISH.items()},
}


def next_state(state: PilotState, event: PilotEvent) -> PilotState:
    """The state after ``event``; raises :class:`InvalidTransition` when none is defined."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state.value, event.value) from None
