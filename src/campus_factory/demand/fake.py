"""Demand from memory or from a JSON snapshot file (the demo, tests, what-if runs).

The file holds ``{"groups": [{"id": .., "count": .., "cpus": .., "memory_mb": .., ...}]}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..classads import MAX_TEXT_CHARS
from ..domain import JobGroup
from ..errors import DemandError
from .bounds import LIMITS, MAX_ATTRIBUTES, MAX_GROUPS, bounded_attribute, bounded_int, bounded_text, loads

__all__ = ["FileDemand", "StaticDemand", "groups_from_json"]

log = logging.getLogger(__name__)


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


def _group(g: Mapping[str, Any], i: int, where: str) -> JobGroup:
    unknown = set(g) - _FIELDS
    if unknown:
        raise DemandError(f"{where}: unknown keys {sorted(map(str, unknown))[:20]}")
    if "count" not in g:
        raise DemandError(f"{where}: count is missing")
    attributes = g.get("attributes", {})
    if not isinstance(attributes, dict) or len(attributes) > MAX_ATTRIBUTES:
        raise DemandError(f"{where}: attributes must be an object of at most {MAX_ATTRIBUTES} names")
    jobs = g.get("jobs", [])
    if not isinstance(jobs, list) or len(jobs) > LIMITS["count"][1]:
        raise DemandError(f"{where}: jobs must be a list of job ids")
    group_id = g.get("id", f"group{i}")
    return JobGroup(
        group_id=bounded_text(str(group_id) if isinstance(group_id, int) else group_id, "id", where),
        count=bounded_int(g["count"], "count", where),
        cpus=bounded_int(g.get("cpus", 1), "cpus", where),
        memory_mb=bounded_int(g.get("memory_mb", 1024), "memory_mb", where),
        disk_mb=bounded_int(g.get("disk_mb", 1024), "disk_mb", where),
        gpus=bounded_int(g.get("gpus", 0), "gpus", where),
        owner=bounded_text(g.get("owner", ""), "owner", where),
        requirements=bounded_text(g.get("requirements", "true"), "requirements", where, MAX_TEXT_CHARS),
        attributes=dict(bounded_attribute(k, v, where) for k, v in attributes.items()),
        schedd=bounded_text(g.get("schedd", ""), "schedd", where),
        jobs=tuple(bounded_text(j, "jobs[]", where) for j in jobs),
    )


def groups_from_json(data: Any, source: str = "<demand>", *, skip_bad: bool = False) -> list[JobGroup]:
    """Job groups of a demand snapshot; :class:`DemandError` names the first bad value. With
    ``skip_bad`` a bad group is left out with a warning (it costs only itself); a snapshot that
    is not an object with a ``groups`` list is an error either way."""
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise DemandError(f"{source}: expected an object with a 'groups' list")
    if len(data["groups"]) > MAX_GROUPS:
        raise DemandError(f"{source}: {len(data['groups'])} groups, at most {MAX_GROUPS}")
    out = []
    for i, g in enumerate(data["groups"]):
        where = f"{source}: groups[{i}]"
        try:
            if not isinstance(g, dict):
                raise DemandError(f"{where}: expected an object")
            out.append(_group(g, i, where))
        except DemandError as exc:
            if not skip_bad:
                raise
            log.warning("skipping a job group of the demand snapshot: %s", exc)
    return out


class FileDemand:
    """Demand read from a JSON snapshot each time it is asked."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def idle_groups(self) -> list[JobGroup]:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise DemandError(f"{self.path}: cannot read the demand snapshot: {exc}") from exc
        data = loads(raw, str(self.path))
        return [g for g in groups_from_json(data, str(self.path), skip_bad=True) if g.count > 0]
