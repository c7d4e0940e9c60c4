"""Claim reuse: idle jobs that a running job of their own group will make room for.

When a job ends and its group has idle jobs, the schedd runs the next one on the same claim at
once (the pilot's START takes it: same cores, same shape). A pilot started now for an idle job
joins only after its site's expected start (:func:`.warm.expected_start_s`) and a negotiation.
So a running job of the group expected to end before a new pilot would join frees a place for
one idle job sooner than that pilot would: the planner gives such claims the idle jobs left
after the capacity already there, before new pilots, and what is left of them counts against
the warm buffer (arrivals that finishing jobs will absorb need no pilot either).

A running job is expected to end at its start plus the group's runtime (declared, or learned
from its recorded runs: :func:`.runtime.group_runtime`); without one nothing is counted. A job
already past its expected end counts for nothing (its end is not predictable: it may run long),
so an idle job left to a claim that did not come is placed again by the next cycle. Nor do the
jobs of a group whose runtime is more than :data:`CLAIM_HORIZON` times the window: a median
says little of when one long job ends (with runtimes spread as a lognormal of sigma 0.6, a job
at its median ends within the next ``window`` with a chance of about ``1.3 x window / runtime``),
and idle jobs left to claims that do not come wait a cycle more each time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from ..domain import JobGroup
from .runtime import group_runtime

__all__ = ["CLAIM_HORIZON", "finishing_claims", "reuse_note", "with_running_jobs"]

#: claims are counted only for groups whose runtime is at most this many times the window
CLAIM_HORIZON = 3.0


def with_running_jobs(groups: Iterable[JobGroup], started: Mapping[str, Sequence[float]]) -> list[JobGroup]:
    """The groups with ``running_started`` set: group id -> start times of its running jobs
    (the loop's job tracker); groups with none are left as they are."""
    out = []
    for g in groups:
        starts = started.get(g.group_id)
        out.append(replace(g, running_started=tuple(sorted(starts))) if starts else g)
    return out


def finishing_claims(g: JobGroup, within: float, now: float) -> int:
    """Running jobs of ``g`` expected to end in ``[now, now + within]`` (0 without a runtime)."""
    runtime = group_runtime(g)
    if runtime is None or not g.running_started or not (math.isfinite(within) and within > 0):
        return 0
    if runtime > CLAIM_HORIZON * within:
        return 0
    until = now + within
    return sum(1 for start in g.running_started if now <= start + runtime <= until)


def reuse_note(g: JobGroup, jobs: int, within: float) -> str:
    """What explain says of the idle jobs left to finishing claims."""
    runtime = group_runtime(g) or 0.0
    return (
        f"{jobs} to the claims of running jobs of the group expected to end within {within:.0f} s "
        f"(of {len(g.running_started)} running, runtime {runtime:.0f} s), before a new pilot would join"
    )
