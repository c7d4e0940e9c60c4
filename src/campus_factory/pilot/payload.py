"""Builds what a pilot runs at a site: the glidein specification for one submission."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..config import CLOUD_PROVIDERS, PilotOptions, PoolOptions, SiteConfig
from ..errors import NotSupportedError
from ..planner.inputs import slot_policy
from ..planner.slotad import start_expression
from ..transport.executor import Executor
from .glidein import GlideinSpec
from .script import PilotScript, render_batch_script
from .tokens import mint_pilot_token

__all__ = ["CLOUD_PROVIDERS", "GlideinBuilder", "glidein_for", "submission_script"]


class PilotRequestLike(Protocol):
    """What a glidein takes from a pilot request (``providers.base.PilotRequest``)."""

    @property
    def cpus(self) -> int: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def gpus(self) -> int: ...


class GlideinBuilder:
    """Mints a token and assembles the :class:`GlideinSpec` for a site's next submission."""

    def __init__(self, pool: PoolOptions, pilot: PilotOptions, executor: Executor, factory_name: str) -> None:
        self.pool = pool
        self.pilot = pilot
        self.executor = executor
        self.factory_name = factory_name

    async def spec(
        self, site: SiteConfig, summary_dir: str = "", size: tuple[int, int, int] | None = None
    ) -> GlideinSpec:
        """The glidein of one submission; ``size`` (cpus, memory MB, GPUs) is what its pilots asked
        for (a site with ``slot.sizing = "fit"``), else the site's slot."""
        cpus, memory_mb, gpus = size or (site.slot.cpus, site.slot.memory_mb, site.slot.gpus)
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
            cpus=cpus,
            memory_mb=memory_mb,
            gpus=gpus,
            walltime_s=int(site.walltime),
            idle_timeout_s=int(site.idle_timeout),
            retire_margin_s=int(min(self.pilot.retire_margin, site.walltime / 2)),
            update_interval_s=int(self.pilot.update_interval),
            is_cloud=site.provider in CLOUD_PROVIDERS,
            start=start,
            fill_only=site.sizing == "fit" and not site.cloud.instance_types,  # an instance takes any job
            attributes=attributes,
            condor_locations=self.pilot.condor_locations,
            tarball=self.pilot.tarball,
            cvmfs_repositories=self.pilot.cvmfs_repositories,
            ccb=self.pilot.ccb,
            extra_config=self.pilot.extra_config,
            scratch=self.pilot.scratch,
            summary_dir=summary_dir,
        )


async def glidein_for(
    site: SiteConfig,
    pilot: PilotOptions,
    builder: GlideinBuilder | None,
    pilots: Sequence[PilotRequestLike],
    summary_dir: str = "",
) -> GlideinSpec | None:
    """The glidein of one submission (one token for its pilots, sized as they asked), or None
    when the site's payload is the command."""
    if pilot.payload != "glidein":
        return None
    if builder is None:
        raise NotSupportedError(f"{site.name}: glidein payload requested but no glidein builder was given")
    first = pilots[0] if pilots else None
    size = (first.cpus, first.memory_mb, first.gpus) if first is not None else None
    return await builder.spec(site, summary_dir, size)


async def submission_script(
    site: SiteConfig,
    pilot: PilotOptions,
    builder: GlideinBuilder | None,
    factory_name: str,
    submission_id: str,
    pilots: Sequence[PilotRequestLike],
    pilot_ids: Sequence[str],
    *,
    index_var: str,
    array_base: int = 0,
    directive_prefix: str = "#",
    directives: Sequence[str] = (),
    summary_dir: str = "",
) -> tuple[str, str | None]:
    """The script of one submission's pilots (a batch job array, a local process, a job in
    another pool): the payload, the pilots' ids, who started them; the glidein when asked for.
    Returns the script and the glidein's token (None without one), for masking in errors."""
    spec = await glidein_for(site, pilot, builder, pilots, summary_dir)
    script = render_batch_script(
        PilotScript(
            directive_prefix=directive_prefix,
            directives=directives,
            pilot_ids=pilot_ids,
            payload=pilot.payload,
            command=pilot.command,
            environment={
                "CAMPUS_FACTORY_SITE": site.name,
                "CAMPUS_FACTORY_NAME": factory_name,
                "CAMPUS_FACTORY_SUBMISSION": submission_id,
            },
            array_index_var=index_var,
            array_base=array_base,
            glidein=spec,
        )
    )
    return script, spec.token if spec is not None else None
