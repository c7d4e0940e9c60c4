"""The ClassAds the simulated pool matches: a job group's job ad and a site's slot ad.

The slot ad is the one the site's config declares (the largest pilot at a site sizing pilots to
demand); what a smaller pilot accepts beyond it is judged numerically by :mod:`.pool`.
"""

from __future__ import annotations

from ..classads import literal
from ..config import SiteConfig
from ..demand.base import JobGroup
from ..planner import build_slot_ad
from ..planner.inputs import slot_policy

__all__ = ["job_ad_attributes", "slot_ad_attributes"]


def job_ad_attributes(g: JobGroup) -> list[tuple[str, str]]:
    """The job ClassAd a schedd would hold for a job of the group (Disk in KiB)."""
    out = [
        ("MyType", '"Job"'),
        ("TargetType", '"Machine"'),
        ("RequestCpus", str(g.cpus)),
        ("RequestMemory", str(g.memory_mb)),
        ("RequestDisk", str(g.disk_mb * 1024)),
        ("RequestGPUs", str(g.gpus)),
        ("Owner", literal(g.owner)),
    ]
    out.extend(sorted(g.attributes.items()))
    out.append(("Requirements", g.requirements.strip() or "true"))
    return out


def slot_ad_attributes(site: SiteConfig) -> list[tuple[str, str]]:
    """The slot ad of a pilot of ``site``: the ad the site's config declares."""
    s = site.slot
    ad = build_slot_ad(site.name, s.cpus, s.memory_mb, s.disk_mb, s.gpus, site.walltime, slot_policy(site))
    return list(ad.attributes)
