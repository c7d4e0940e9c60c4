"""The shapes of cloud sites' instance types, read at the first cycle and again after a TTL.

A site listing ``cloud.instance_types`` needs its types' shapes before it can be planned for:
the planner chooses among them. Shapes the config declares need no call; the others come from
the provider (EC2 DescribeInstanceTypes, OpenStack's flavor list) once, then again after
``cloud.instance_types_ttl``. When a read fails, the shapes read before stay in use (with the
error reported); a site whose shapes were never read gets no action this cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config import SIZED_CLOUD_PROVIDERS, SiteConfig
from ..domain import InstanceShape
from ..errors import NotSupportedError
from ..providers._cloud import instance_shapes
from ..providers.base import Provider

__all__ = ["InstanceTypes", "declared_types"]


def declared_types(sites: Iterable[SiteConfig]) -> dict[str, tuple[InstanceShape, ...]]:
    """The shapes of the sites whose every instance type is declared in the config (no cloud asked):
    what an offline plan (``plan show``, ``plan explain``) can know."""
    return {
        s.name: instance_shapes(s, {})
        for s in sites
        if s.cloud.instance_types
        and s.provider in SIZED_CLOUD_PROVIDERS
        and all(t.declared for t in s.cloud.instance_types)
    }


class InstanceTypes:
    """Per site: when its types' shapes were read, and what they were."""

    def __init__(self) -> None:
        self._read: dict[str, tuple[float, object, tuple[InstanceShape, ...]]] = {}

    def needed(self, site: SiteConfig) -> bool:
        return bool(site.cloud.instance_types) and site.provider in SIZED_CLOUD_PROVIDERS

    def known(self, site: SiteConfig) -> bool:
        got = self._read.get(site.name)
        return got is not None and got[1] == site.cloud.instance_types

    async def refresh(self, site: SiteConfig, provider: Provider, now: float) -> None:
        """Read the site's shapes when none are known or they are older than the TTL; raises what
        the provider raised (the shapes read before stay in use)."""
        if not self.needed(site):
            return
        got = self._read.get(site.name)
        if got is not None and got[1] == site.cloud.instance_types and now - got[0] < site.cloud.instance_types_ttl:
            return
        if all(t.declared for t in site.cloud.instance_types):
            shapes = instance_shapes(site, {})
        else:
            read = getattr(provider, "instance_shapes", None)
            if read is None:
                raise NotSupportedError(f"{site.name}: this provider cannot read instance types")
            shapes = await read()
        self._read[site.name] = (now, site.cloud.instance_types, tuple(shapes))

    def current(self) -> Mapping[str, tuple[InstanceShape, ...]]:
        """Site name -> the shapes last read."""
        return {name: shapes for name, (_, _, shapes) in self._read.items()}
