"""The campus match behind flocked demand (pure): which idle job groups no campus slot could run.

A campus pool's slots are taken **as if empty** (a partitionable slot with all of its
``TotalSlot*`` resources; dynamic slots and offline ads left out) and each job group is matched
against them both ways, as ``condor_q -better-analyze`` would. :func:`split_for_flocking` then
says which groups the factory plans for; :mod:`campus_factory.demand.flocking` does the queries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..classads import ClassAdError, ParsedAd, literal, parsed_ad, requirements_met, signature
from ..domain import JobGroup, group_id_for
from .htcondor import group_job_ads

__all__ = [
    "MAX_SLOT_REFS",
    "CampusSlot",
    "FlockSplit",
    "campus_slot",
    "group_job_ad",
    "group_with",
    "runs_on",
    "shape_signature",
    "slot_job_refs",
    "split_for_flocking",
]

#: resources a partitionable slot advertises as what is left, and the attribute with its total
_TOTALS = (
    ("Cpus", "TotalSlotCpus"),
    ("Memory", "TotalSlotMemory"),
    ("Disk", "TotalSlotDisk"),
    ("GPUs", "TotalSlotGPUs"),
)
#: attributes that change between updates of one slot: left out of its shape's signature
_VOLATILE = frozenset(
    {
        "name",
        "machine",
        "myaddress",
        "startdipaddr",
        "addressv1",
        "publicclaimid",
        "lastheardfrom",
        "updatesequencenumber",
        "mycurrenttime",
        "keyboardidle",
        "consoleidle",
        "globaljobid",
        "jobid",
        "remoteowner",
        "remoteuser",
        "clientmachine",
        "authenticatedidentity",
    }
)
#: job attributes the JobGroup models itself: never fetched as extras
_MODELED = frozenset(
    a.lower() for a in ("ClusterId", "ProcId", "Owner", "RequestCpus", "RequestMemory", "RequestDisk", "RequestGPUs")
) | {"requirements"}
_ATTR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
MAX_SLOT_REFS = 64


@dataclass(frozen=True)
class CampusSlot:
    """A campus slot as if empty: its name, its shape's signature and its parsed ad."""

    name: str
    shape: str
    ad: ParsedAd
    cpus: float
    memory_mb: float
    disk_kb: float
    gpus: float


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def campus_slot(attributes: Mapping[str, str]) -> CampusSlot | None:
    """The slot of a startd ad (attribute -> ClassAd text) as if nothing ran on it.

    None for a dynamic slot (its partitionable parent stands for it), an offline ad (not
    capacity the pool has now) or an ad that does not parse.
    """
    low = {k.lower(): (k, v) for k, v in attributes.items()}

    def text(name: str) -> str | None:
        hit = low.get(name.lower())
        return hit[1].strip() if hit else None

    if (text("DynamicSlot") or "").lower() == "true" or (text("Offline") or "").lower() == "true":
        return None
    items = dict(attributes)
    if (text("PartitionableSlot") or "").lower() == "true":
        for now_name, total in _TOTALS:
            value = text(total)
            if value is not None:
                items.pop(low[now_name.lower()][0] if now_name.lower() in low else now_name, None)
                items[now_name] = value
    items["State"], items["Activity"] = '"Unclaimed"', '"Idle"'
    try:
        ad = parsed_ad(items)
    except ClassAdError:
        return None
    name = text("Name") or '"?"'
    return CampusSlot(
        name.strip('"'),
        shape_signature(attributes),
        ad,
        cpus=_number(items.get("Cpus")) or 0.0,
        memory_mb=_number(items.get("Memory")) or 0.0,
        disk_kb=_number(items.get("Disk")) or 0.0,
        gpus=_number(items.get("GPUs")) or 0.0,
    )


def shape_signature(attributes: Mapping[str, str]) -> str:
    """Slots of one shape (same attributes but names, addresses and times) match the same jobs."""
    return signature((k, v) for k, v in attributes.items() if k.lower() not in _VOLATILE and "time" not in k.lower())


def group_job_ad(g: JobGroup) -> list[tuple[str, str]]:
    """One job of the group as ClassAd attributes (the group's attributes are ClassAd text)."""
    out = [
        ("MyType", '"Job"'),
        ("TargetType", '"Machine"'),
        ("RequestCpus", str(g.cpus)),
        ("RequestMemory", str(g.memory_mb)),
        ("RequestDisk", str(g.disk_mb * 1024)),
        ("RequestGPUs", str(g.gpus)),
        ("Owner", literal(g.owner)),
    ]
    seen = {k.lower() for k, _ in out} | {"requirements"}
    out.extend((k, v) for k, v in sorted(g.attributes.items()) if k.lower() not in seen)
    out.append(("Requirements", g.requirements.strip() or "true"))
    return out


def runs_on(job: ParsedAd, g: JobGroup, slot: CampusSlot) -> bool:
    """Whether one job of ``g`` would match ``slot`` (both Requirements, and its resources)."""
    if g.cpus > slot.cpus or g.memory_mb > slot.memory_mb or g.gpus > slot.gpus:
        return False
    if slot.disk_kb and g.disk_mb * 1024 > slot.disk_kb:
        return False
    try:
        return requirements_met(job, slot.ad) and requirements_met(slot.ad, job)
    except ClassAdError:  # beyond the evaluation bounds, or the library failed: no match
        return False


def slot_job_refs(slots: Iterable[CampusSlot]) -> set[str]:
    """Job attributes the slots' Requirements (START) look at, ``TARGET.x`` or unscoped (at most
    :data:`MAX_SLOT_REFS`): the campus match needs them in the job groups."""
    names: set[str] = set()
    for s in slots:
        if s.ad.requirements is None:
            continue
        try:
            refs = s.ad.ad.externalRefs(s.ad.requirements)
        except Exception:  # noqa: S112  # a slot whose references cannot be read adds none
            continue
        for ref in refs:
            scope, _, rest = str(ref).partition(".")
            name = rest if rest and scope.lower() == "target" else ("" if rest else scope)
            if name and _ATTR.match(name) and name.lower() not in _MODELED:
                names.add(name)
                if len(names) >= MAX_SLOT_REFS:
                    return names
    return names


def group_with(ads: Iterable[Any], schedd: str, extra: Sequence[str]) -> list[JobGroup]:
    """:func:`group_job_ads`, keeping the ``extra`` attributes too (jobs differing in them are
    different groups)."""
    if not extra:
        return group_job_ads(ads, schedd)
    parts: dict[tuple[tuple[str, str], ...], list[Any]] = {}
    for ad in ads:
        try:
            values = tuple((k, str(ad.lookup(k))) for k in extra if k in ad)
        except Exception:
            values = ()
        parts.setdefault(values, []).append(ad)
    out = []
    for values, part in parts.items():
        for g in group_job_ads(part, schedd):
            if values:
                attrs = {**{k: v for k, v in values}, **g.attributes}
                g = replace(g, group_id=group_id_for(g.group_id, *values), attributes=attrs)
            out.append(g)
    return out


@dataclass(frozen=True)
class FlockSplit:
    """``flocking``: groups (or their long-waiting part) the factory plans for; ``campus``: the
    groups left to the campus pool, each with the name of a campus slot that could run it."""

    flocking: tuple[JobGroup, ...] = ()
    campus: tuple[tuple[JobGroup, str], ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def left_to_campus(self) -> int:
        return sum(g.count for g, _ in self.campus)


def split_for_flocking(
    groups: Iterable[JobGroup],
    slots: Sequence[CampusSlot],
    *,
    idle_since: Mapping[str, float] | None = None,
    wait_for_campus: float | None = None,
    now: float = 0.0,
    cache: dict[tuple[str, str], str | None] | None = None,
) -> FlockSplit:
    """Split job groups into what the factory plans for and what the campus pool will run.

    ``idle_since``: job id ("cluster.proc") -> when it became idle. With ``wait_for_campus``,
    the jobs of a campus-runnable group idle for longer than that are demand too. A group whose
    ad cannot be built or evaluated goes to the planner (the campus cannot match it either).
    ``cache`` maps (group key, slot signature) to a slot name, kept by the caller across cycles.
    """
    idle_since = idle_since or {}
    flocking: list[JobGroup] = []
    campus: list[tuple[JobGroup, str]] = []
    errors: list[str] = []
    shapes = signature((s.shape, "") for s in slots)
    for g in groups:
        key = (g.group_id, shapes)
        found = cache.get(key, "") if cache is not None else ""
        if found == "":
            found = None
            try:
                job = parsed_ad(group_job_ad(g))
                found = next((s.name for s in slots if runs_on(job, g, s)), None)
            except Exception as exc:  # a hostile expression costs only its group
                errors.append(f"{g.schedd}: group {g.group_id}: cannot match it against the campus slots: {exc}")
            if cache is not None:
                cache[key] = found
        if found is None:
            flocking.append(g)
            continue
        late: tuple[str, ...] = ()
        if wait_for_campus is not None:
            late = tuple(j for j in g.jobs if j in idle_since and now - idle_since[j] > wait_for_campus)
        if late:
            flocking.append(replace(g, count=len(late), jobs=late))
            rest = tuple(j for j in g.jobs if j not in late)
            if rest:
                campus.append((replace(g, count=len(rest), jobs=rest), found))
            continue
        campus.append((g, found))
    return FlockSplit(tuple(flocking), tuple(campus), tuple(errors))
