"""The slot ad the simulated pool matches jobs against (a job's ad is the planner's own
:func:`~campus_factory.planner.match.job_attributes`, so both judge the same ad).

The slot ad is the one the site's config declares (the largest pilot at a site sizing pilots to
demand); what a smaller pilot accepts beyond it is judged numerically by :mod:`.pool`.
"""

from __future__ import annotations

from ..config import SiteConfig
from ..planner import build_slot_ad
from ..planner.inputs import slot_policy

__all__ = ["slot_ad_attributes"]


def slot_ad_attributes(site: SiteConfig) -> list[tuple[str, str]]:
    """The slot ad of a pilot of ``site``: the ad the site's config declares."""
    s = site.slot
    ad = build_slot_ad(site.name, s.cpus, s.memory_mb, s.disk_mb, s.gpus, site.walltime, slot_policy(site))
    return list(ad.attributes)
