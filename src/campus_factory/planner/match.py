"""Matching job groups against slot ads, both ways, with the real ClassAd library.

A group matches a site when one of its jobs fits an empty pilot there (cpus, memory, disk,
GPUs, and a declared runtime within the pilot's lifetime), the job's Requirements is true with
the slot ad as TARGET, and the slot's Requirements (= START) is true with the job as TARGET.

:class:`MatchCache` keeps parsed ads and results between cycles, keyed by a group's signature
(its significant attributes, not its id or count) and the slot ad's signature, so a warm cycle
evaluates only what changed. The loop owns one cache; :func:`plan` stays pure (the cache only
memoises deterministic results: a plan with a cache equals the plan without one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..classads import ClassAdError, ParsedAd, failed_clauses, literal, parsed_ad, requirements_met
from ..domain import JobGroup
from .slotad import default_slot_ad
from .types import SiteSpec, SlotAd

__all__ = [
    "MATCH_OK",
    "GroupKey",
    "MatchCache",
    "MatchOutcome",
    "group_key",
    "job_attributes",
    "job_runtime_s",
    "resource_misfit",
]

GroupKey = tuple[int, int, int, int, str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class MatchOutcome:
    """``failed``: "" when matched, else "resources", "job Requirements", "site START" or "ad"."""

    ok: bool
    failed: str = ""
    detail: str = ""


MATCH_OK = MatchOutcome(True)
_JOB_REQ = MatchOutcome(False, "job Requirements")
_SITE_START = MatchOutcome(False, "site START")


def group_key(g: JobGroup) -> GroupKey:
    """What makes two groups match the same sites (id, count and job ids left out)."""
    return (g.cpus, g.memory_mb, g.disk_mb, g.gpus, g.owner, g.requirements, tuple(sorted(g.attributes.items())))


def _attr_text(text: str) -> str:
    """A job attribute as ClassAd text; a bare word that is not an expression becomes a string."""
    stripped = text.strip()
    if stripped and (stripped[0] in '"{[(-0123456789' or stripped.lower() in ("true", "false", "undefined")):
        return stripped
    if stripped.replace("_", "").replace(".", "").isalnum() and not stripped[0].isdigit():
        # ``cloud-only`` is not an attribute reference; a bare identifier may be one: keep it
        return stripped
    return literal(stripped)


def job_attributes(g: JobGroup) -> list[tuple[str, str]]:
    """The ClassAd attributes of one job of the group (Disk in KiB, like the schedd)."""
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
    out.extend((k, _attr_text(v)) for k, v in sorted(g.attributes.items()) if k.lower() not in seen)
    out.append(("Requirements", g.requirements.strip() or "true"))
    return out


def job_runtime_s(g: JobGroup) -> float | None:
    """The runtime a group declares: ``MaxWallTimeMins`` (minutes) or ``AllowedExecuteDuration`` (s)."""
    for name, scale in (("MaxWallTimeMins", 60.0), ("AllowedExecuteDuration", 1.0)):
        raw = g.attributes.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if value > 0 and math.isfinite(value):
            return value * scale
    return None


_UNSET = -1.0


def resource_misfit(g: JobGroup, site: SiteSpec, runtime: float | None = _UNSET) -> str:
    """What one job of the group lacks in an empty pilot of the site ("" when it fits).

    ``runtime``: the group's declared runtime when the caller has it already.
    """
    missing = []
    if g.cpus > site.cpus:
        missing.append(f"cpus {g.cpus} > {site.cpus}")
    if g.memory_mb > site.memory_mb:
        missing.append(f"memory {g.memory_mb} MB > {site.memory_mb} MB")
    if site.disk_mb > 0 and g.disk_mb > site.disk_mb:
        missing.append(f"disk {g.disk_mb} MB > {site.disk_mb} MB")
    if g.gpus > site.gpus:
        missing.append(f"gpus {g.gpus} > {site.gpus}")
    if runtime == _UNSET:
        runtime = job_runtime_s(g)
    if runtime is not None and runtime > site.walltime_s:
        missing.append(f"runtime {runtime:.0f} s > pilot lifetime {site.walltime_s:.0f} s")
    return ", ".join(missing)


class MatchCache:
    """Parsed ads and match results that do not change between cycles.

    Entries unused for ``keep_cycles`` plans are dropped at the end of a plan once the cache
    holds more than ``max_entries`` results. ``hits``/``misses`` count result lookups.
    """

    def __init__(self, *, max_entries: int = 200_000, keep_cycles: int = 3) -> None:
        self.max_entries = max_entries
        self.keep_cycles = keep_cycles
        self.generation = 0
        self.hits = 0
        self.misses = 0
        self._jobs: dict[GroupKey, tuple[int, ParsedAd | ClassAdError]] = {}
        self._slots: dict[str, tuple[int, ParsedAd | ClassAdError]] = {}
        self._runtimes: dict[GroupKey, float | None] = {}
        self._results: dict[tuple[GroupKey, str, tuple[int, int, int, int, float]], tuple[int, MatchOutcome]] = {}

    def __len__(self) -> int:
        return len(self._results)

    def begin(self) -> None:
        """Start a plan: entries touched from now on belong to this generation."""
        self.generation += 1

    def end(self) -> None:
        """End a plan: forget old entries when the cache is over its size."""
        if len(self._results) <= self.max_entries:
            return
        oldest = self.generation - self.keep_cycles
        self._results = {k: v for k, v in self._results.items() if v[0] > oldest}
        self._jobs = {k: v for k, v in self._jobs.items() if v[0] > oldest}
        self._slots = {k: v for k, v in self._slots.items() if v[0] > oldest}
        self._runtimes = {k: v for k, v in self._runtimes.items() if k in self._jobs}

    def slot_ad(self, site: SiteSpec) -> SlotAd:
        return site.slot_ad if site.slot_ad is not None else default_slot_ad(site)

    def _job_ad(self, key: GroupKey, g: JobGroup) -> ParsedAd | ClassAdError:
        hit = self._jobs.get(key)
        if hit is None:
            try:
                ad: ParsedAd | ClassAdError = parsed_ad(job_attributes(g))
            except ClassAdError as exc:
                ad = exc
            hit = (self.generation, ad)
        self._jobs[key] = (self.generation, hit[1])
        return hit[1]

    def _parsed_slot(self, slot: SlotAd) -> ParsedAd | ClassAdError:
        sig = slot.signature
        hit = self._slots.get(sig)
        if hit is None:
            try:
                ad: ParsedAd | ClassAdError = parsed_ad(slot.attributes)
            except ClassAdError as exc:
                ad = exc
            hit = (self.generation, ad)
        self._slots[sig] = (self.generation, hit[1])
        return hit[1]

    def site_key(self, site: SiteSpec) -> tuple[SlotAd, str, tuple[int, int, int, int, float]]:
        """What a site contributes to result keys (computed once per site and plan)."""
        slot = self.slot_ad(site)
        return slot, slot.signature, (site.cpus, site.memory_mb, site.disk_mb, site.gpus, site.walltime_s)

    def match(
        self,
        g: JobGroup,
        site: SiteSpec,
        key: GroupKey | None = None,
        site_key: tuple[SlotAd, str, tuple[int, int, int, int, float]] | None = None,
    ) -> MatchOutcome:
        """Whether one job of ``g`` would run on an empty pilot of ``site``."""
        key = group_key(g) if key is None else key
        slot, sig, res = self.site_key(site) if site_key is None else site_key
        rkey = (key, sig, res)
        hit = self._results.get(rkey)
        if hit is not None:
            self.hits += 1
            self._results[rkey] = (self.generation, hit[1])
            return hit[1]
        self.misses += 1
        outcome = self._evaluate(key, g, site, slot)
        self._results[rkey] = (self.generation, outcome)
        return outcome

    def _evaluate(self, key: GroupKey, g: JobGroup, site: SiteSpec, slot: SlotAd) -> MatchOutcome:
        runtime = self._runtimes.get(key, _UNSET)
        if runtime == _UNSET:
            runtime = self._runtimes[key] = job_runtime_s(g)
        misfit = resource_misfit(g, site, runtime)
        if misfit:
            return MatchOutcome(False, "resources", misfit)
        job = self._job_ad(key, g)
        if isinstance(job, ClassAdError):
            return MatchOutcome(False, "ad", f"job ad: {job}")
        machine = self._parsed_slot(slot)
        if isinstance(machine, ClassAdError):
            return MatchOutcome(False, "ad", f"slot ad: {machine}")
        # a Requirements beyond the bounds, or that the library fails on, costs this pair only:
        # the group at this site (a bad job ad fails at every site, a bad slot ad for every group)
        try:
            if not requirements_met(job, machine):
                return _JOB_REQ
        except ClassAdError as exc:
            return MatchOutcome(False, "ad", f"job ad: {exc}")
        try:
            if not requirements_met(machine, job):
                return _SITE_START
        except ClassAdError as exc:
            return MatchOutcome(False, "ad", f"slot ad: {exc}")
        return MATCH_OK

    def clauses(self, g: JobGroup, site: SiteSpec) -> list[tuple[str, str, str]]:
        """For explain: (side, clause, value) of every false clause of both Requirements."""
        job = self._job_ad(group_key(g), g)
        slot = self.slot_ad(site)
        machine = self._parsed_slot(slot)
        if isinstance(job, ClassAdError) or isinstance(machine, ClassAdError):
            return []
        req = g.requirements or "true"
        out = [("job Requirements", c, v) for c, v in failed_clauses(req, job.ad, machine.ad)]
        start = slot.get("START") or "true"
        out.extend(("site START", c, v) for c, v in failed_clauses(start, machine.ad, job.ad))
        return out


def outcome_counts(outcomes: Mapping[str, MatchOutcome]) -> dict[str, int]:
    """How many sites failed for each reason."""
    counts: dict[str, int] = {}
    for o in outcomes.values():
        if not o.ok:
            counts[o.failed] = counts.get(o.failed, 0) + 1
    return counts
