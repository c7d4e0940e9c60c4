"""Builds what a pilot runs at a site: the glidein specification for one submission."""

from __future__ import annotations

from ..config import CLOUD_PROVIDERS, PilotOptions, PoolOptions, SiteConfig
from ..planner.inputs import slot_policy
from ..planner.slotad import start_expression
from ..transport.executor import Executor
from .glidein import GlideinSpec
from .tokens import mint_pilot_token

__all__ = ["CLOUD_PROVIDERS", "GlideinBuilder"]


class GlideinBuilder:
    """Mints a token and assembles the :class:`GlideinSpec` for a site's next submission."""

    def __init__(self, pool: PoolOptions, pilot: PilotOptions, executor: Executor, factory_name: str) -> None:
        self.pool = pool
        self.pilot = pilot
        self.executor = executor
        self.factory_name = factory_name

    async def spec(self, site: SiteConfig, summary_dir: str = "") -> GlideinSpec:
        lifetime = site.walltime + self.pilot.token.queue_allowance
        token = await mint_pilot_token(self.executor, self.pilot.token, site.name, lifetime)
        policy = slot_policy(site)
        start = start_expression(policy.start, policy.allowed_owners, policy.allowed_groups)
        attributes = dict(policy.attributes)
        attributes["CampusFactoryPreemptable"] = "true" if site.preemptable else "false"
        return GlideinSpec(
            collector=self.pool.collector,
            site=site.name,
            factory=self.factory_name,
            token=token,
            cpus=site.slot.cpus,
            memory_mb=site.slot.memory_mb,
            gpus=site.slot.gpus,
            walltime_s=int(site.walltime),
            idle_timeout_s=int(site.idle_timeout),
            retire_margin_s=int(min(self.pilot.retire_margin, site.walltime / 2)),
            update_interval_s=int(self.pilot.update_interval),
            is_cloud=site.provider in CLOUD_PROVIDERS,
            start=start,
            attributes=attributes,
            condor_locations=self.pilot.condor_locations,
            tarball=self.pilot.tarball,
            cvmfs_repositories=self.pilot.cvmfs_repositories,
            ccb=self.pilot.ccb,
            extra_config=self.pilot.extra_config,
            scratch=self.pilot.scratch,
            summary_dir=summary_dir,
        )
