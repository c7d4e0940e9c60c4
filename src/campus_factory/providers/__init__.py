"""Providers: start, observe and stop pilots at one kind of site."""

from __future__ import annotations

from ..config import PilotOptions, SiteConfig
from ..domain import PilotRequest
from ..pilot.payload import GlideinBuilder
from ..transport.executor import Executor
from .base import (
    CancelResult,
    JobState,
    JobStatus,
    Observation,
    Provider,
    Submission,
    SubmittedPilot,
)

__all__ = [
    "CancelResult",
    "JobState",
    "JobStatus",
    "Observation",
    "PilotRequest",
    "Provider",
    "Submission",
    "SubmittedPilot",
    "build_provider",
]


def build_provider(
    site: SiteConfig,
    pilot: PilotOptions,
    executor: Executor,
    factory_name: str,
    glidein: GlideinBuilder | None = None,
) -> Provider:
    """The provider for one site; nothing is contacted until the first call.

    ``glidein`` builds the glidein payload (token, pool address) for sites whose payload
    (``site.payload``, else ``pilot.payload``) is ``"glidein"``.
    """
    if site.payload is not None and site.payload != pilot.payload:
        pilot = pilot.model_copy(update={"payload": site.payload})
    if site.transport.kind == "ssh":  # one connection per site, reused by all its commands
        from ..transport.ssh import SSHExecutor

        executor = SSHExecutor(site.transport, site=site.name)
    if site.provider == "htcondor":
        from .htcondor_remote import HTCondorRemoteProvider

        return HTCondorRemoteProvider(site, pilot, factory_name, glidein)
    if site.provider == "pbs":
        from .pbs import pbs_provider

        return pbs_provider(site, pilot, executor, factory_name, glidein)
    if site.provider == "sge":
        from .sge import SgeProvider

        return SgeProvider(site, pilot, executor, factory_name, glidein)
    if site.provider == "lsf":
        from .lsf import LsfProvider

        return LsfProvider(site, pilot, executor, factory_name, glidein)
    if site.provider == "slurm":
        from .slurm import SlurmProvider

        return SlurmProvider(site, pilot, executor, factory_name, glidein)
    if site.provider == "local":
        from .local import LocalProvider

        return LocalProvider(site, pilot, factory_name, glidein)
    if site.provider == "ec2":
        from .ec2 import Ec2Provider

        return Ec2Provider(site, pilot, factory_name, glidein)
    if site.provider == "openstack":
        from .openstack import OpenStackProvider

        return OpenStackProvider(site, pilot, factory_name, glidein)
    if site.provider == "libcloud":
        from .libcloud import LibcloudProvider

        return LibcloudProvider(site, pilot, factory_name, glidein)
    if site.provider == "kubernetes":
        from .kubernetes import KubernetesProvider

        return KubernetesProvider(site, pilot, factory_name)
    if site.provider == "fake":
        from .fake import FakeProvider

        return FakeProvider(site.name)
    raise ValueError(f"unknown provider {site.provider!r}")  # config validation prevents this
