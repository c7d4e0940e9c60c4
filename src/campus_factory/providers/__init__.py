"""Providers: start, observe and stop pilots at one kind of site."""

from __future__ import annotations

from ..config import PilotOptions, SiteConfig
from ..pilot.payload import GlideinBuilder
from ..transport.executor import Executor
from .base import (
    CancelResult,
    JobState,
    JobStatus,
    Observation,
    PilotRequest,
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

    ``glidein`` builds the glidein payload (token, pool address) for batch sites when
    ``pilot.payload = "glidein"``.
    """
    if site.provider == "slurm":
        from .slurm import SlurmProvider

        return SlurmProvider(site, pilot, executor, factory_name, glidein)
    if site.provider == "local":
        from .local import LocalProvider

        return LocalProvider(site, pilot, factory_name, glidein)
    if site.provider == "fake":
        from .fake import FakeProvider

        return FakeProvider(site.name)
    raise ValueError(f"unknown provider {site.provider!r}")  # config validation prevents this
