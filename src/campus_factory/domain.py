"""Data types that several layers share, below all of them.

A job group is what :mod:`~campus_factory.demand` produces and the planner, the simulator and
the loop consume; a pilot request is what the planner's plan turns into, what providers start
and what the ledger records. Keeping them here lets the planner stay free of every I/O module
and the ledger free of providers (``tests/test_layout.py`` checks those import rules).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["InstanceShape", "JobGroup", "PilotRequest", "group_id_for", "printable"]

#: characters never printed raw: C0/C1 controls but tab (line breaks forge log lines, ESC drives
#: terminals), bidirectional overrides (text that reads differently than it is), lone surrogates
#: (not encodable: a log handler or a terminal would fail on them)
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """``text`` with every character that could forge a line, drive a terminal or fail to encode
    shown as an escape (``\\n``, ``\\x1b``, ``\\ud800``): for logs and explanations, whose text
    comes partly from users (group ids, owners, reasons)."""

    def escape(m: re.Match[str]) -> str:
        c = m.group()
        return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")

    return _UNPRINTABLE.sub(escape, text)


@dataclass(frozen=True)
class JobGroup:
    """Idle jobs that look the same to a matchmaker.

    ``requirements`` is the job's Requirements expression as ClassAd text; ``attributes`` holds
    the other attributes a site's START expression may look at (ClassAd text per attribute).
    ``arrivals_per_hour``: how fast jobs of the group have been submitted lately, as the loop
    measured it between cycles (0: none lately, or unknown); the planner keeps a small warm
    buffer of pilots for the jobs that will arrive while new pilots start.
    ``learned_runs``/``learned_runtime_s``: how many recent runs of the group's jobs the ledger
    holds and their median runtime, as the loop read them (0: none); the planner uses the median
    for a group that declares no runtime, once there are enough runs (:mod:`.planner.runtime`).
    ``running_started``: when each of the group's jobs now running on this factory's pilots
    started, as the loop's job tracker saw them; a job expected to end before a new pilot would
    join hands its claim to an idle job of the group (:mod:`.planner.reuse`).
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
    arrivals_per_hour: float = 0.0
    learned_runs: int = 0
    learned_runtime_s: float = 0.0
    running_started: tuple[float, ...] = ()

    def __hash__(self) -> int:
        return hash(self.group_id)


def group_id_for(*parts: object) -> str:
    """A short stable id for a group's significant attributes."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return f"g{digest[:10]}"


@dataclass(frozen=True)
class PilotRequest:
    """One pilot to start; ``pilot_id`` is the factory's name for it. ``instance_type``: the
    instance type (flavor) the planner chose for it at a cloud site listing several
    (``cloud.instance_types``); empty: the site's one type (``cloud.instance_type``)."""

    pilot_id: str
    cpus: int
    memory_mb: int
    disk_mb: int
    gpus: int
    walltime_s: float
    instance_type: str = ""


@dataclass(frozen=True)
class InstanceShape:
    """One instance type (EC2) or flavor (OpenStack) a cloud site may start, as the planner
    sees it: its resources (read from the cloud, or declared in the config) and its cost per hour.

    ``name`` is the config's name for it; ``ref`` the cloud's own id (a flavor id; the type
    name on EC2). Built only by the providers' parsers and :func:`providers._cloud.shape`, which
    check every value is a bounded integer."""

    name: str
    cpus: int
    memory_mb: int
    disk_mb: int
    gpus: int
    cost_per_hour: float
    ref: str = ""

    @property
    def resources(self) -> tuple[int, int, int, int]:
        """(cpus, memory MB, disk MB, GPUs): the planner's shape of a pilot of this type; disk 0
        (none known, as ``slot.disk_mb = 0``) is -1, not limited."""
        return (self.cpus, self.memory_mb, self.disk_mb if self.disk_mb > 0 else -1, self.gpus)
