"""When each pilot's last job ended, as the loop sees it: idle timeouts run from there.

A pilot's state changes (``joined``) say nothing about its jobs: a pilot that joined an hour ago
and finished its last job a few seconds ago has been idle for seconds. Each look at the pool
(once a cycle) notes, per pilot seen running a job, the first look that finds it idle again;
the planner's :class:`~campus_factory.planner.PilotView` gets that time as ``idle_since``.
A pilot never seen busy has none, and its state change counts (it has had no job since).
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
    """Per pilot: None while busy, else the time it was first seen idle after a job."""

    def __init__(self) -> None:
        self._idle_from: dict[str, float | None] = {}

    def observe(self, slots: Mapping[str, _Busy], now: float) -> None:
        """One look at the pool: ``slots`` maps pilot ids to their partitionable slot."""
        idle_from = self._idle_from
        for pid, slot in slots.items():
            if slot.busy:
                idle_from[pid] = None
            elif pid in idle_from and idle_from[pid] is None:
                idle_from[pid] = now
        for pid in [p for p in idle_from if p not in slots]:
            del idle_from[pid]

    def idle_since(self, pilot_id: str) -> float | None:
        """When the pilot's last job ended (None: busy, never seen busy, or not seen)."""
        return self._idle_from.get(pilot_id)

    def apply(self, views: Iterable[PilotView]) -> list[PilotView]:
        """``views`` with ``idle_since`` set where it is known."""
        return [replace(v, idle_since=at) if (at := self.idle_since(v.pilot_id)) is not None else v for v in views]
