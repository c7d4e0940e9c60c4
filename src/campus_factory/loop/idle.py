"""When each pilot's last job ended, as the loop sees it: idle timeouts run from there.

A pilot's state changes (``joined``) say nothing about its jobs: a pilot that joined an hour ago
and finished its last job a few seconds ago has been idle for seconds. Each look at the pool
(once a cycle) notes, per pilot seen running a job, the first look that finds it idle again;
the planner's :class:`~campus_factory.planner.PilotView` gets that time as ``idle_since``.
A pilot never seen busy has none, and its state change counts (it has had no job since).

A pilot seen busy is not forgotten when one look misses it (its ad late at a loaded collector)
or when the pool cannot be read: its idle time then runs from that look, never from its joining,
so a pilot running a job is not cancelled as idle since it joined. It is forgotten once it is
no longer live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Protocol

from ..planner import PilotView

__all__ = ["IdleTracker"]


class _Busy(Protocol):
    @property
    def busy(self) -> bool: ...


class IdleTracker:
    """Per pilot seen busy: None while busy, else the first look that did not find it busy."""

    def __init__(self) -> None:
        self._idle_from: dict[str, float | None] = {}

    def observe(self, slots: Mapping[str, _Busy], now: float) -> None:
        """One look at the pool: ``slots`` maps pilot ids to their partitionable slot."""
        idle_from = self._idle_from
        for pid, slot in slots.items():
            if slot.busy:
                idle_from[pid] = None
        for pid, at in idle_from.items():
            if at is None and not (pid in slots and slots[pid].busy):  # idle, or missed by this look
                idle_from[pid] = now

    def idle_since(self, pilot_id: str) -> float | None:
        """When the pilot's last job ended (None: busy, never seen busy, or not seen)."""
        return self._idle_from.get(pilot_id)

    def apply(self, views: Iterable[PilotView], now: float) -> list[PilotView]:
        """``views`` (every live pilot) with ``idle_since`` set where it is known; pilots not
        among them are forgotten. A pilot last seen busy whose slot this cycle did not read (the
        pool unreadable) is idle from ``now`` at the earliest."""
        views = list(views)
        live = {v.pilot_id for v in views}
        for pid in [p for p in self._idle_from if p not in live]:
            del self._idle_from[pid]
        out = []
        for v in views:
            if v.pilot_id not in self._idle_from:
                out.append(v)
                continue
            at = self._idle_from[v.pilot_id]
            since = now if at is None and v.busy is None else at
            out.append(v if since == v.idle_since else replace(v, idle_since=since))
        return out
