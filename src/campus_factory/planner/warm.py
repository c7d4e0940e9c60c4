"""When a new pilot would start, and the warm buffer: pure helpers of the planner.

**Expected start.** A new pilot at a site is expected to join the pool after the site's learned
start latency (the median, over its recent pilots, from submission to the startd joining; from
submission to the batch job starting when no join was seen; 0 when the site has no history, so
it gets tried), or after the age of the oldest pilot still waiting in its queue when that is
longer (the site is congested: a new pilot waits behind it). New pilots go first to the sites
whose expected start is within :data:`START_TOLERANCE_S` of the fastest matched site, in
preference order (rank, cost, config order); slower sites follow, fastest first. Capacity
already there is always used first, in preference order, whatever the latencies.

**Warm buffer.** Jobs of a group that has been arriving (``JobGroup.arrivals_per_hour``, measured
by the loop) keep arriving while new pilots start: after every idle job is placed, the planner
provisions for ``arrivals per second x expected start`` more jobs of the group (at most
:data:`BUFFER_MAX_JOBS`), so that they find a pilot when they come instead of waiting a whole
start latency. Those pilots count as waste when no job comes; a queued one is cancelled as soon
as the arrivals stop, a joined one as soon as no job needs it (:data:`IDLE_GRACE_S`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..domain import JobGroup
from .types import QUEUED_STATES, PilotView, SiteSpec

__all__ = [
    "BUFFER_MAX_JOBS",
    "IDLE_GRACE_S",
    "JOIN_SETTLE_S",
    "START_TOLERANCE_S",
    "buffer_jobs",
    "expected_start_s",
    "latency_note",
    "start_bucket",
]

#: sites whose new pilots are expected to start this close to the fastest keep their preference order
START_TOLERANCE_S = 120.0
#: the most jobs of one group provisioned for ahead of their arrival, per cycle
BUFFER_MAX_JOBS = 64
#: a fit pilot that no idle job nor the warm buffer needs is cancelled once idle this long after
#: its last job (or its site's idle_timeout when shorter): at the first look that finds it idle,
#: since it was sized for jobs that are gone and a new one is started when such jobs come
IDLE_GRACE_S = 0.0
#: a pilot that joined this recently and has never been seen running a job is not cancelled as
#: idle: its first job may have started before its slot's ad says so (a claim reaches the
#: collector with the startd's next update), and cancelling it would evict that job
JOIN_SETTLE_S = 30.0


def learned_latency_s(site: SiteSpec) -> float:
    """The site's learned start latency (0.0 when it has no recent pilots)."""
    h = site.health
    if h is None:
        return 0.0
    if h.join_latency_s is not None:
        return h.join_latency_s
    return h.start_latency_s or 0.0


def expected_start_s(site: SiteSpec, pilots: Sequence[PilotView], now: float) -> float:
    """Seconds until a pilot submitted now would join the pool (see the module docstring)."""
    oldest = max((now - p.since for p in pilots if p.state in QUEUED_STATES), default=0.0)
    return max(learned_latency_s(site), oldest)


def start_bucket(expected: float, fastest: float) -> int:
    """0 for sites within the tolerance of the fastest, then 1, 2, ... per further tolerance."""
    return max(0, int((expected - fastest) // START_TOLERANCE_S))


def buffer_jobs(g: JobGroup, expected: float) -> int:
    """Jobs of ``g`` expected to arrive while a new pilot starts (0 without recent arrivals)."""
    rate = g.arrivals_per_hour / 3600.0
    if not (rate > 0 and math.isfinite(rate) and expected > 0):
        return 0
    return min(BUFFER_MAX_JOBS, math.ceil(rate * expected))


def latency_note(site: SiteSpec, expected: float) -> str:
    """What explain says of a site's learned start latency and a new pilot's expected start."""
    h = site.health
    if h is not None and h.join_latency_s is not None:
        learned = (
            f"start latency {h.join_latency_s:.0f} s (median from submission to joining, "
            f"{h.latency_samples} recent pilot(s))"
        )
    elif h is not None and h.start_latency_s:
        learned = f"start latency {h.start_latency_s:.0f} s (median from submission to the batch job starting)"
    else:
        learned = "no start latency learned yet (no recent pilot started)"
    return f"{learned}; a new pilot is expected to join in {expected:.0f} s"
