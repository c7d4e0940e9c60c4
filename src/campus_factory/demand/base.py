"""Demand: idle jobs, grouped into job groups (jobs with the same significant attributes)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DemandSource", "JobGroup", "group_id_for"]


@dataclass(frozen=True)
class JobGroup:
    """Idle jobs that look the same to a matchmaker.

    ``requirements`` is the job's Requirements expression as ClassAd text; ``attributes`` holds
    the other attributes a site's START expression may look at (ClassAd text per attribute).
    """

    group_id: str
    count: int
    cpus: int = 1
    memory_mb: int = 1024
    disk_mb: int = 1024
    gpus: int = 0
    owner: str = ""
    requirements: str = "true"
    attributes: Mapping[str, str] = field(default_factory=dict)
    schedd: str = ""
    jobs: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash(self.group_id)


def group_id_for(*parts: object) -> str:
    """A short stable id for a group's significant attributes."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return f"g{digest[:10]}"


class DemandSource(Protocol):
    """Where idle jobs come from."""

    def idle_groups(self) -> list[JobGroup]: ...
