"""Demand from memory or from a JSON snapshot file (the demo, tests, what-if runs).

The file holds ``{"groups": [{"id": .., "count": .., "cpus": .., "memory_mb": .., ...}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..domain import JobGroup
from ..errors import DemandError

__all__ = ["FileDemand", "StaticDemand", "groups_from_json"]


class StaticDemand:
    """Demand held in memory; tests change :attr:`groups` between cycles."""

    def __init__(self, groups: Iterable[JobGroup] = ()) -> None:
        self.groups = list(groups)

    def idle_groups(self) -> list[JobGroup]:
        return [g for g in self.groups if g.count > 0]


_FIELDS = {
    "id",
    "count",
    "cpus",
    "memory_mb",
    "disk_mb",
    "gpus",
    "owner",
    "requirements",
    "attributes",
    "schedd",
    "jobs",
}


def groups_from_json(data: Any, source: str = "<demand>") -> list[JobGroup]:
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise DemandError(f"{source}: expected an object with a 'groups' list")
    out = []
    for i, g in enumerate(data["groups"]):
        where = f"{source}: groups[{i}]"
        if not isinstance(g, dict):
            raise DemandError(f"{where}: expected an object")
        unknown = set(g) - _FIELDS
        if unknown:
            raise DemandError(f"{where}: unknown keys {sorted(unknown)}")
        try:
            out.append(
                JobGroup(
                    group_id=str(g.get("id", f"group{i}")),
                    count=int(g["count"]),
                    cpus=int(g.get("cpus", 1)),
                    memory_mb=int(g.get("memory_mb", 1024)),
                    disk_mb=int(g.get("disk_mb", 1024)),
                    gpus=int(g.get("gpus", 0)),
                    owner=str(g.get("owner", "")),
                    requirements=str(g.get("requirements", "true")),
                    attributes={str(k): str(v) for k, v in dict(g.get("attributes", {})).items()},
                    schedd=str(g.get("schedd", "")),
                    jobs=tuple(str(j) for j in g.get("jobs", ())),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DemandError(f"{where}: {exc!r}") from exc
        if out[-1].count < 0 or out[-1].cpus < 1 or out[-1].memory_mb < 0:
            raise DemandError(f"{where}: count, cpus and memory_mb must be positive")
    return out


class FileDemand:
    """Demand read from a JSON snapshot each time it is asked."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def idle_groups(self) -> list[JobGroup]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DemandError(f"{self.path}: cannot read the demand snapshot: {exc}") from exc
        return [g for g in groups_from_json(data, str(self.path)) if g.count > 0]
