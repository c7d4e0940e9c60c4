"""Which runtime the planner assumes for a job group, and where it came from.

Precedence: the runtime a job declares (``MaxWallTimeMins``, ``AllowedExecuteDuration``) wins;
then the median of the group's recent runs the ledger recorded, once there are at least
:data:`MIN_RUNS` of them (the loop reads them: ``JobGroup.learned_runs``/``learned_runtime_s``);
then the site's configured ``job_runtime``. The runtime decides which running pilots count as
capacity for a group (a pilot with less lifetime left than the runtime does not).

:func:`median_runtimes` turns recorded runs into those figures; it is pure, like the rest of
the planner: the loop reads the runs and hands them in. A run whose duration is not a finite
number of seconds in ``(0, MAX_RUNTIME_S]`` (clock skew, a run recorded twice, a bad row) is
ignored, so no absurd value reaches the plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from statistics import median

from ..domain import JobGroup
from .match import job_runtime_s
from .types import SiteSpec

__all__ = [
    "LAST_RUNS",
    "MAX_RUNTIME_S",
    "MIN_RUNS",
    "group_runtime",
    "median_runtimes",
    "runtime_note",
    "with_learned_runtimes",
]

#: runs of a group needed before its median replaces the site's configured job_runtime
MIN_RUNS = 3
#: the median is of the group's most recent runs, at most this many
LAST_RUNS = 20
#: a run longer than this (30 days) is not a runtime but a bad record: ignored
MAX_RUNTIME_S = 30 * 86400.0


def median_runtimes(runs: Iterable[tuple[str, float, float]], *, last: int = LAST_RUNS) -> dict[str, tuple[int, float]]:
    """Group id -> (runs counted, median runtime s) of (group id, started_at, ended_at) runs.

    Of each group only its ``last`` most recently ended runs count; durations outside
    ``(0, MAX_RUNTIME_S]`` or not finite are left out.
    """
    by_group: dict[str, list[tuple[float, float]]] = {}
    for group, start, end in runs:
        duration = end - start
        if not (math.isfinite(duration) and 0.0 < duration <= MAX_RUNTIME_S):
            continue
        by_group.setdefault(group, []).append((end, duration))
    out = {}
    for group, rows in by_group.items():
        rows.sort(reverse=True)
        kept = [d for _, d in rows[: max(1, last)]]
        out[group] = (len(kept), float(median(kept)))
    return out


def with_learned_runtimes(groups: Iterable[JobGroup], learned: Mapping[str, tuple[int, float]]) -> list[JobGroup]:
    """The groups with ``learned_runs``/``learned_runtime_s`` set from :func:`median_runtimes`."""
    out = []
    for g in groups:
        hit = learned.get(g.group_id)
        out.append(replace(g, learned_runs=hit[0], learned_runtime_s=hit[1]) if hit else g)
    return out


def _learned(g: JobGroup) -> float | None:
    s = g.learned_runtime_s
    if g.learned_runs >= MIN_RUNS and math.isfinite(s) and 0.0 < s <= MAX_RUNTIME_S:
        return s
    return None


def group_runtime(g: JobGroup) -> float | None:
    """The group's runtime in seconds: declared, else learned; None: the site's job_runtime."""
    declared = job_runtime_s(g)
    return declared if declared is not None else _learned(g)


def runtime_note(g: JobGroup, sites: Sequence[SiteSpec] = ()) -> str:
    """Where the group's runtime came from, for ``plan explain``."""
    declared = job_runtime_s(g)
    if declared is not None:
        return f"declared: {declared:.0f} s"
    learned = _learned(g)
    if learned is not None:
        return f"learned from {g.learned_runs} runs: median {learned:.0f} s"
    values = sorted({s.job_runtime_s for s in sites})
    shown = " / ".join(f"{v:.0f} s" for v in values)
    note = "site default" + (f" (job_runtime {shown})" if shown else "")
    if g.learned_runs > 0:
        note += f"; {g.learned_runs} run(s) recorded, {MIN_RUNS} needed to learn"
    return note
