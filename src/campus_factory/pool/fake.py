"""A pool in memory: tests and the simulator set the startd ads pilots would advertise."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .base import PilotSlot, slot_from_ad

__all__ = ["FakePool", "pilot_ad"]


def pilot_ad(
    site: str,
    pilot_id: str,
    *,
    cpus: int = 4,
    memory_mb: int = 8000,
    gpus: int = 0,
    disk_mb: int = 10000,
    used_cpus: int = 0,
    used_memory_mb: int = 0,
    end: float | None = None,
    seen_at: float = 0.0,
    factory: str = "campus",
    **extra: Any,
) -> dict[str, Any]:
    """The partitionable-slot ad a glidein would advertise, as plain Python values."""
    ad: dict[str, Any] = {
        "MyType": "Machine",
        "Name": f"slot1@{pilot_id}",
        "PartitionableSlot": True,
        "CampusFactorySite": site,
        "CampusFactoryName": factory,
        "CampusFactoryPilotId": pilot_id,
        "Cpus": cpus - used_cpus,
        "Memory": memory_mb - used_memory_mb,
        "Disk": disk_mb * 1024,
        "GPUs": gpus,
        "TotalSlotCpus": cpus,
        "TotalSlotMemory": memory_mb,
        "TotalSlotDisk": disk_mb * 1024,
        "TotalSlotGPUs": gpus,
        "NumDynamicSlots": 1 if used_cpus else 0,
        "OpSys": "LINUX",
        "Arch": "X86_64",
        "LastHeardFrom": seen_at,
    }
    if end is not None:
        ad["CampusFactoryPilotEnd"] = end
        ad["CampusFactoryRetireMargin"] = 0
    ad.update(extra)
    return ad


class FakePool:
    """Startd ads held in memory; :attr:`ads` may change between cycles."""

    def __init__(self, ads: Iterable[Mapping[str, Any]] = (), *, now: float = 0.0) -> None:
        self.ads = [dict(a) for a in ads]
        self.now = now
        self.queries = 0
        self.fail: str | None = None

    def pilot_slots(self) -> list[PilotSlot]:
        from ..errors import PoolError

        self.queries += 1
        if self.fail:
            raise PoolError(self.fail)
        out = []
        for ad in self.ads:
            slot = slot_from_ad(ad, self.now)
            if slot is not None:
                out.append(slot)
        return out
