"""Matchmaking in the simulated pool: which job groups a site's pilots can run.

Negotiation uses the real ClassAd library: a group matches a site's pilots when the job's
Requirements is true with the pilot's slot ad (:func:`.ads.slot_ad_attributes`) as TARGET and
the slot's Requirements (START) is true with the job as TARGET. Slot ads do not change, so the
result is computed once per (group, site) pair. What a pilot's free resources hold is judged
numerically by :mod:`.pool`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..classads import ClassAdError, ParsedAd, parsed_ad, requirements_met
from ..config import SiteConfig
from ..domain import JobGroup
from ..planner.match import job_attributes
from .ads import slot_ad_attributes

if TYPE_CHECKING:
    from .pool import SimJob

__all__ = ["Matcher", "SimGroup"]


@dataclass(eq=False)
class SimGroup:
    """One job group (autocluster) of the simulated pool: its idle jobs, oldest first."""

    gid: str
    template: JobGroup
    idle: deque[SimJob] = field(default_factory=deque)
    ad: ParsedAd | None = None


class Matcher:
    """Group vs site matches, each evaluated once with the real ClassAd library."""

    def __init__(self, sites: Mapping[str, SiteConfig]) -> None:
        self.sites = sites
        self.evaluations = 0
        self._slot_ads: dict[str, ParsedAd | None] = {}
        self._matches: dict[tuple[str, str], bool] = {}

    def _slot_ad(self, site: str) -> ParsedAd | None:
        if site not in self._slot_ads:
            try:
                self._slot_ads[site] = parsed_ad(slot_ad_attributes(self.sites[site]))
            except ClassAdError:
                self._slot_ads[site] = None
        return self._slot_ads[site]

    def matches(self, group: SimGroup, site: str) -> bool:
        """Job Requirements vs slot ad and slot START vs job, once per (group, site)."""
        key = (group.gid, site)
        hit = self._matches.get(key)
        if hit is None:
            self.evaluations += 1
            if group.ad is None:
                try:
                    group.ad = parsed_ad(job_attributes(group.template))
                except ClassAdError:
                    group.ad = ParsedAd(None, None, False)
            slot = self._slot_ad(site)
            try:
                hit = bool(
                    slot is not None
                    and group.ad.ad is not None
                    and requirements_met(group.ad, slot)
                    and requirements_met(slot, group.ad)
                )
            except ClassAdError:  # beyond the evaluation bounds: no match
                hit = False
            self._matches[key] = hit
        return hit

    def runnable_anywhere(self, group: SimGroup) -> bool:
        return any(self.matches(group, s) for s in self.sites)
