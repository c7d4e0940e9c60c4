"""Demand: where idle jobs come from. The job group itself is in :mod:`campus_factory.domain`."""

from __future__ import annotations

from typing import Protocol

from ..domain import JobGroup

__all__ = ["DemandSource"]


class DemandSource(Protocol):
    """Where idle jobs come from."""

    def idle_groups(self) -> list[JobGroup]: ...
