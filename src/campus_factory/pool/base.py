"""The pool's view: pilots' startd ads as plain data, and the learned slot ads they give.

A pilot's partitionable slot ad (attributes set by the glidein: CampusFactorySite,
CampusFactoryName, CampusFactoryPilotId, CampusFactoryPilotEnd, CampusFactoryRetireMargin)
becomes a :class:`PilotSlot`; :class:`LearnedAds` keeps the latest one per site across cycles,
so a site keeps its refined slot ad after its pilots have left. Conversion is pure: ads are
``classad2.ClassAd`` objects or plain mappings of Python values (the fake, tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..classads import literal

__all__ = [
    "LearnedAds",
    "PilotSlot",
    "PoolView",
    "attribute_text",
    "by_pilot",
    "latest_by_site",
    "slot_from_ad",
    "started_at",
]


@dataclass(frozen=True)
class PilotSlot:
    """One pilot's partitionable slot in the collector.

    ``free_*`` are the unclaimed resources; ``total_*`` the whole pilot; ``retire_at`` when its
    START turns false (pilot end minus retire margin), None when it does not say.
    ``attributes`` holds every attribute as ClassAd text (for learned slot ads).
    """

    name: str
    site: str
    pilot_id: str
    total_cpus: int
    total_memory_mb: int
    total_disk_mb: int
    total_gpus: int
    free_cpus: int
    free_memory_mb: int
    free_disk_mb: int
    free_gpus: int
    busy: bool
    seen_at: float
    retire_at: float | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: when the startd started (``DaemonStartTime``): when the pilot joined the pool
    daemon_start: float | None = None

    def learned(self) -> dict[str, str]:
        """Attributes for a learned slot ad: totals as Cpus/Memory/GPUs (a slot ad is an empty pilot)."""
        out = dict(self.attributes)
        out["Cpus"] = str(self.total_cpus)
        out["Memory"] = str(self.total_memory_mb)
        out["GPUs"] = str(self.total_gpus)
        return out


class PoolView(Protocol):
    """Where pilot slots come from: the collector, or a fake."""

    def pilot_slots(self) -> list[PilotSlot]: ...


def _get(ad: Any, name: str) -> Any:
    if type(ad) is dict:  # plain values (the fake, tests): nothing to evaluate
        return ad.get(name)
    try:
        value = ad.get(name)
    except Exception:
        return None
    if value is not None and hasattr(ad, "eval"):
        try:
            value = ad.eval(name)
        except Exception:
            return None
    return value


def _num(ad: Any, name: str, default: float = 0.0) -> float:
    value = _get(ad, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def attribute_text(ad: Any, name: str) -> str:
    """An attribute as ClassAd text, from a ClassAd (its expression) or a mapping (a literal)."""
    if hasattr(ad, "lookup"):
        return str(ad.lookup(name))
    return literal(ad[name])


class _AdAttributes(Mapping[str, str]):
    """Every attribute of an ad as ClassAd text, rendered on first use: only the latest slot of
    each site is read (learned slot ads), so thousands of pilots' ads are not rendered a cycle."""

    def __init__(self, ad: Any) -> None:
        self._ad: Any = ad
        self._text: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._text is None:
            ad, self._ad = self._ad, None
            self._text = {str(k): attribute_text(ad, str(k)) for k in list(ad.keys())}
        return self._text

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


def slot_from_ad(ad: Any, now: float) -> PilotSlot | None:
    """A :class:`PilotSlot` from a startd ad; None when it is not one of our pilots' slots."""
    site = _get(ad, "CampusFactorySite")
    pilot = _get(ad, "CampusFactoryPilotId")
    if not isinstance(site, str) or not isinstance(pilot, str):
        return None
    cpus = int(_num(ad, "Cpus"))
    mem = int(_num(ad, "Memory"))
    disk = int(_num(ad, "Disk") / 1024)
    gpus = int(_num(ad, "GPUs"))
    total_cpus = int(_num(ad, "TotalSlotCpus", cpus))
    total_mem = int(_num(ad, "TotalSlotMemory", mem))
    if _get(ad, "PartitionableSlot") is True:  # claimed parts are dynamic slots
        busy = _num(ad, "NumDynamicSlots") > 0 or cpus < total_cpus
    else:  # a static slot
        busy = _get(ad, "State") == "Claimed"
    end = _get(ad, "CampusFactoryPilotEnd")
    retire = None
    if isinstance(end, int | float) and not isinstance(end, bool):
        retire = float(end) - _num(ad, "CampusFactoryRetireMargin", 0.0)
    return PilotSlot(
        name=str(_get(ad, "Name") or pilot),
        site=site,
        pilot_id=pilot,
        total_cpus=total_cpus,
        total_memory_mb=total_mem,
        total_disk_mb=int(_num(ad, "TotalSlotDisk", disk * 1024) / 1024),
        total_gpus=int(_num(ad, "TotalSlotGPUs", gpus)),
        free_cpus=cpus,
        free_memory_mb=mem,
        free_disk_mb=disk,
        free_gpus=gpus,
        busy=bool(busy),
        seen_at=_num(ad, "LastHeardFrom", now) or now,
        retire_at=retire,
        attributes=_AdAttributes(ad),
        daemon_start=_num(ad, "DaemonStartTime") or None,
    )


def started_at(slot: PilotSlot) -> float | None:
    """When the pilot's startd started (its ad's ``DaemonStartTime``), if the ad says."""
    return slot.daemon_start


def by_pilot(slots: Iterable[PilotSlot]) -> dict[str, PilotSlot]:
    """Slots by pilot id (the latest when a pilot shows twice)."""
    out: dict[str, PilotSlot] = {}
    for s in slots:
        old = out.get(s.pilot_id)
        if old is None or s.seen_at >= old.seen_at:
            out[s.pilot_id] = s
    return out


def latest_by_site(slots: Iterable[PilotSlot]) -> dict[str, PilotSlot]:
    """The most recently heard slot of each site (ties: the larger pilot id)."""
    out: dict[str, PilotSlot] = {}
    for s in slots:
        old = out.get(s.site)
        if old is None or (s.seen_at, s.pilot_id) > (old.seen_at, old.pilot_id):
            out[s.site] = s
    return out


class LearnedAds:
    """The latest learned slot-ad attributes per site, kept across cycles (and files)."""

    def __init__(self, ads: Mapping[str, tuple[float, Mapping[str, str]]] | None = None) -> None:
        self._ads: dict[str, tuple[float, dict[str, str]]] = {k: (t, dict(a)) for k, (t, a) in (ads or {}).items()}

    def update(self, slots: Iterable[PilotSlot]) -> None:
        """Take each site's latest slot when it is newer than what is kept."""
        for site, slot in latest_by_site(slots).items():
            old = self._ads.get(site)
            if old is None or slot.seen_at >= old[0]:
                self._ads[site] = (slot.seen_at, slot.learned())

    def get(self, site: str) -> dict[str, str] | None:
        hit = self._ads.get(site)
        return dict(hit[1]) if hit else None

    def seen_at(self, site: str) -> float | None:
        hit = self._ads.get(site)
        return hit[0] if hit else None

    def to_json(self) -> str:
        return json.dumps({k: {"seen_at": t, "attributes": a} for k, (t, a) in sorted(self._ads.items())})

    @classmethod
    def from_json(cls, text: str) -> LearnedAds:
        data = json.loads(text)
        return cls({k: (float(v["seen_at"]), dict(v["attributes"])) for k, v in data.items()})
