"""The provider contract: submit many, observe many, cancel many.

A provider is the adapter that starts, observes and stops pilots at one kind of site. It is
async and batched, takes and returns frozen dataclasses, and never writes the ledger: the loop
records every transition. Each backend translates its native job states through one table into
:class:`JobState`; a state the table does not know becomes ``UNKNOWN`` with a warning.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..domain import PilotRequest

__all__ = [
    "CancelResult",
    "JobState",
    "JobStatus",
    "Observation",
    "Provider",
    "Submission",
    "SubmittedPilot",
    "translate_state",
]

log = logging.getLogger(__name__)


class JobState(enum.Enum):
    """What a site says of one pilot job, in one vocabulary for every backend."""

    PENDING = "pending"  # waiting in the site's queue (or booting)
    RUNNING = "running"  # started
    COMPLETED = "completed"  # ended by itself (including a clean exit after a TERM)
    FAILED = "failed"  # ended with an error the site reported
    CANCELLED = "cancelled"  # removed before or while running (by us, an admin or preemption)
    UNKNOWN = "unknown"  # a native state the translation table does not know
    GONE = "gone"  # neither in the queue nor in accounting

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.GONE)


def translate_state(native: str, table: Mapping[str, JobState], backend: str) -> JobState:
    """Translate a native state; unknown states map to UNKNOWN with a warning."""
    key = native.strip().upper()
    state = table.get(key)
    if state is None:
        log.warning("%s: unknown job state %r, treated as UNKNOWN", backend, native)
        return JobState.UNKNOWN
    return state


@dataclass(frozen=True)
class Submission:
    """Pilots submitted together to one site (one batch job array where the site has them).

    ``tag`` is written into the site's job (its name, or an instance tag) so that a job left
    behind by a crash can be recognised and adopted on the next cycle.
    """

    submission_id: str
    tag: str
    pilots: tuple[PilotRequest, ...]


@dataclass(frozen=True)
class SubmittedPilot:
    pilot_id: str
    job_id: str


@dataclass(frozen=True)
class JobStatus:
    """One job as the site reports it."""

    job_id: str
    state: JobState
    native_state: str = ""
    tag: str = ""
    array_index: int | None = None
    exit_code: int | None = None
    reason: str = ""
    from_accounting: bool = False
    #: when the site says the job started and ended (UNIX seconds), when it says so: the ledger
    #: then records the pilot's start and end at those times, not at the cycle that noticed
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class Observation:
    """The answer to one observe call: every known job's status, and tagged strangers.

    ``statuses`` has an entry for every job id asked about. ``tagged`` lists every job of the
    site that carries one of this factory's tags (known or not), so that jobs submitted just
    before a crash can be matched to their ledger rows.
    """

    statuses: Mapping[str, JobStatus]
    tagged: Sequence[JobStatus] = field(default_factory=tuple)


@dataclass(frozen=True)
class CancelResult:
    job_id: str
    ok: bool
    detail: str = ""


class Provider(Protocol):
    """What the loop needs of a site's backend."""

    site: str

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        """Start the pilots; return their job ids in the order of ``submission.pilots``."""
        ...

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        """Status of many jobs in as few site calls as possible (one queue query per cycle)."""
        ...

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        """Ask pilots to leave (graceful: a TERM the pilot traps), or remove them."""
        ...
