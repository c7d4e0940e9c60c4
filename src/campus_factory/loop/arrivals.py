"""How fast each job group's jobs have been arriving: the loop's measure between cycles.

Each cycle compares the idle job groups with the previous cycle's: new job ids when the demand
lists them (``JobGroup.jobs``), else the growth of the idle count (jobs that arrived and already
started between two looks are missed, so the measure errs low); a group not seen at the last
look arrived whole since then. The rate is smoothed over
cycles (half from the latest cycle, half from before) and decays when nothing arrives; a group
unseen for a while is forgotten. The planner sizes its warm buffer from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..domain import JobGroup

__all__ = ["ArrivalTracker"]


@dataclass
class _Seen:
    at: float
    count: int
    jobs: frozenset[str]
    rate: float  # jobs per hour


class ArrivalTracker:
    """Per job group: what was idle at the last look and the smoothed arrival rate."""

    def __init__(self, *, smoothing: float = 0.5, forget_after_s: float = 3600.0) -> None:
        self.smoothing = smoothing
        self.forget_after_s = forget_after_s
        self._seen: dict[str, _Seen] = {}
        self._last_at: float | None = None

    def observe(self, groups: Iterable[JobGroup], now: float) -> list[JobGroup]:
        """The groups with ``arrivals_per_hour`` set from what arrived since the last look."""
        out = []
        present = set()
        last, self._last_at = self._last_at, now
        for g in groups:
            present.add(g.group_id)
            prev = self._seen.get(g.group_id)
            jobs = frozenset(g.jobs)
            if prev is None:
                # a group new since the last look: its jobs all arrived since then (a cluster just
                # submitted, more of it likely coming); unknown on the very first look
                rate = g.count * 3600.0 / (now - last) if last is not None and now > last else 0.0
                rate *= self.smoothing
            elif now <= prev.at:
                rate = prev.rate
            else:
                new = len(jobs - prev.jobs) if jobs else max(0, g.count - prev.count)
                latest = new * 3600.0 / (now - prev.at)
                rate = self.smoothing * latest + (1 - self.smoothing) * prev.rate
            self._seen[g.group_id] = _Seen(now, g.count, jobs, rate)
            out.append(replace(g, arrivals_per_hour=rate) if rate > 0 else g)
        for gid, seen in list(self._seen.items()):
            if gid in present:
                continue
            # no idle job now: nothing arrived that is still waiting; the rate decays
            seen.rate *= 1 - self.smoothing
            seen.count, seen.jobs = 0, frozenset()
            if now - seen.at > self.forget_after_s:
                del self._seen[gid]
        return out

    def rate(self, group_id: str) -> float:
        """The group's smoothed arrival rate in jobs per hour (0.0 when unknown)."""
        seen = self._seen.get(group_id)
        return seen.rate if seen is not None else 0.0
