"""Slot ads: the ClassAd of a pilot a site would start, from declared and learned attributes.

Precedence, lowest first (a later layer replaces an attribute of an earlier one; names are
compared case-insensitively, as ClassAd does):

1. **defaults**: MyType, TargetType, OpSys="LINUX", Arch="X86_64", HasFileTransfer,
   CondorVersion (needed by condor_submit's default Requirements), IsCloudNode=false,
   partitionable-slot state;
2. **declared resources**: Cpus, Memory (MB), Disk (KiB, as a startd advertises it), GPUs, and
   their Total* twins, from ``[sites.slot]``;
3. **declared attributes**: ``[sites.slot.attributes]`` and ``[sites.slot.expressions]``;
4. **learned attributes**: the latest startd ad of a real pilot at the site, restricted to the
   stable facts in :data:`LEARNED_ATTRIBUTES`, any ``Has*`` attribute, and every declared
   attribute name (so a declared ``HasCVMFS = true`` is corrected by what pilots report) —
   except the names the site lists as ``pinned``;
5. **factory-owned**: Name, Machine, CampusFactorySite, CampusFactoryLifetime,
   CampusFactoryPreemptable, START (the declared start expression AND the allowed owners or
   groups), Requirements = START. These are never declared nor learned.

Dynamic attributes (load, times, free disk) are never learned: they would change the ad's
signature every cycle and defeat the match cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..classads import literal
from .types import SiteSpec, SlotAd

__all__ = [
    "DEFAULT_CONDOR_VERSION",
    "FACTORY_OWNED",
    "LEARNED_ATTRIBUTES",
    "SlotPolicy",
    "build_slot_ad",
    "default_slot_ad",
    "start_expression",
]

DEFAULT_CONDOR_VERSION = "$CondorVersion: 25.0.0 2025-01-01 BuildID: campus-factory $"

#: attributes always set by the factory, never taken from config nor from learned ads
FACTORY_OWNED = frozenset(
    n.lower()
    for n in (
        "Name",
        "Machine",
        "MyType",
        "TargetType",
        "CampusFactorySite",
        "CampusFactoryLifetime",
        "CampusFactoryPreemptable",
        "START",
        "Requirements",
        "Offline",
    )
)

#: stable facts a real pilot's startd ad may refine (besides Has* and declared names)
LEARNED_ATTRIBUTES = (
    "Cpus",
    "Memory",
    "GPUs",
    "OpSys",
    "OpSysAndVer",
    "OpSysMajorVer",
    "OpSysName",
    "Arch",
    "CondorVersion",
    "IsCloudNode",
    "CUDACapability",
    "CUDADriverVersion",
    "GPUs_Capability",
    "GPUs_DeviceName",
    "GPUs_GlobalMemoryMb",
    "SingularityVersion",
)


@dataclass(frozen=True)
class SlotPolicy:
    """What a site's config says about its slot ad (besides resources)."""

    attributes: tuple[tuple[str, str], ...] = ()  # name -> ClassAd expression text
    start: str = "true"
    allowed_owners: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    preemptable: bool = False
    pinned: tuple[str, ...] = ()
    learn_attributes: tuple[str, ...] = ()


def start_expression(start: str, owners: Iterable[str] = (), groups: Iterable[str] = ()) -> str:
    """The pilots' START: the declared expression AND (owner allowed OR accounting group allowed)."""
    owners, groups = tuple(owners), tuple(groups)
    who = []
    if owners:
        who.append(f"member(TARGET.Owner, {literal(list(owners))})")
    if groups:
        who.append(f"member(TARGET.AcctGroup, {literal(list(groups))})")
    base = start.strip() or "true"
    if not who:
        return base
    clause = who[0] if len(who) == 1 else "(" + " || ".join(who) + ")"
    return clause if base.lower() == "true" else f"({base}) && {clause}"


def _layer(into: dict[str, tuple[str, str]], items: Iterable[tuple[str, str]]) -> None:
    for k, v in items:
        into[k.lower()] = (k, v)


def _wanted_learned(policy: SlotPolicy) -> set[str]:
    names = {n.lower() for n in LEARNED_ATTRIBUTES}
    names |= {n.lower() for n in policy.learn_attributes}
    names |= {k.lower() for k, _ in policy.attributes}
    return names


def learned_items(learned: Mapping[str, str], policy: SlotPolicy) -> list[tuple[str, str]]:
    """The learned attributes that may refine a slot ad, in name order."""
    wanted = _wanted_learned(policy)
    pinned = {p.lower() for p in policy.pinned}
    out = []
    for k in sorted(learned):
        low = k.lower()
        if low in FACTORY_OWNED or low in pinned:
            continue
        if low in wanted or (low.startswith("has") and low != "hasfiletransfer"):
            out.append((k, learned[k]))
    return out


def build_slot_ad(
    site: str,
    cpus: int,
    memory_mb: int,
    disk_mb: int,
    gpus: int,
    walltime_s: float,
    policy: SlotPolicy = SlotPolicy(),
    learned: Mapping[str, str] | None = None,
) -> SlotAd:
    """The slot ad of ``site`` with the documented precedence (see the module docstring)."""
    ad: dict[str, tuple[str, str]] = {}
    _layer(
        ad,
        [
            ("MyType", '"Machine"'),
            ("TargetType", '"Job"'),
            ("OpSys", '"LINUX"'),
            ("Arch", '"X86_64"'),
            ("HasFileTransfer", "true"),
            ("CondorVersion", literal(DEFAULT_CONDOR_VERSION)),
            ("IsCloudNode", "false"),
            ("PartitionableSlot", "true"),
            ("SlotType", '"Partitionable"'),
            ("State", '"Unclaimed"'),
            ("Activity", '"Idle"'),
        ],
    )
    _layer(
        ad,
        [
            ("Cpus", str(cpus)),
            ("TotalSlotCpus", str(cpus)),
            ("Memory", str(memory_mb)),
            ("TotalSlotMemory", str(memory_mb)),
            ("Disk", str(disk_mb * 1024)),
            ("TotalSlotDisk", str(disk_mb * 1024)),
            ("GPUs", str(gpus)),
            ("TotalSlotGPUs", str(gpus)),
        ],
    )
    _layer(ad, ((k, v) for k, v in policy.attributes if k.lower() not in FACTORY_OWNED))
    if learned:
        _layer(ad, learned_items(learned, policy))
    _layer(
        ad,
        [
            ("Name", literal(f"campus-factory@{site}")),
            ("Machine", literal(site)),
            ("CampusFactorySite", literal(site)),
            ("CampusFactoryLifetime", str(int(walltime_s))),
            ("CampusFactoryPreemptable", literal(policy.preemptable)),
            ("START", start_expression(policy.start, policy.allowed_owners, policy.allowed_groups)),
            ("Requirements", "START"),
        ],
    )
    return SlotAd(tuple(sorted(ad.values(), key=lambda kv: kv[0].lower())))


def default_slot_ad(site: SiteSpec) -> SlotAd:
    """The slot ad of a site given without one: defaults and its resources only."""
    return build_slot_ad(site.name, site.cpus, site.memory_mb, site.disk_mb, site.gpus, site.walltime_s)
