"""Builds a :class:`~campus_factory.loop.factory.Factory` from a config: the real parts, wired."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..demand.base import DemandSource
from ..demand.fake import FileDemand
from ..demand.flocking import pool_demand
from ..ledger import Ledger
from ..pilot.payload import GlideinBuilder
from ..pool.htcondor import HTCondorJobs, HTCondorPool
from ..pool.offline import OfflineAdPublisher
from ..providers import build_provider
from ..transport.executor import Executor, LocalExecutor
from .factory import Factory
from .usage import JobTracker

__all__ = ["build_factory", "open_for_reading"]


def open_for_reading(url: str) -> Ledger:
    """The ledger at ``url`` for a command that only reads: no directory, file or table is
    created and no migration runs. A SQLite file that does not exist yet reads as an empty
    ledger (an in-memory one), so ``site list`` or a dry run work before the first real run."""
    file = url.removeprefix("sqlite:///").split("?", 1)[0] if url.startswith("sqlite:///") else None
    if file and file != ":memory:" and not Path(file).exists():
        return Ledger.open("sqlite://")
    return Ledger.open(url, migrate=False)


def build_factory(
    config: Config,
    *,
    ledger_url: str | None = None,
    demand_file: str | None = None,
    executor: Executor | None = None,
    read_only: bool = False,
) -> Factory:
    """Open the ledger and build the demand source, the pool view and one provider per site.

    With ``demand_file`` the demand comes from a JSON snapshot and the pool is not asked;
    ``read_only`` (a dry run) opens the ledger with :func:`open_for_reading`.
    """
    url = ledger_url or config.factory.ledger_url
    ledger = open_for_reading(url) if read_only else Ledger.open(url)
    demand: DemandSource = FileDemand(demand_file) if demand_file else pool_demand(config.pool)
    run = executor or LocalExecutor()
    glidein = GlideinBuilder(config.pool, config.pilot, run, config.factory.name)
    providers = {s.name: build_provider(s, config.pilot, run, config.factory.name, glidein) for s in config.sites}
    if demand_file:
        return Factory(config, ledger, demand, providers)
    pool = HTCondorPool(config.pool, config.factory.name)
    offline = OfflineAdPublisher(config.pool, config.factory.name) if config.pool.offline_ads else None
    jobs = JobTracker(HTCondorJobs(config.pool, config.factory.name))
    return Factory(config, ledger, demand, providers, pool=pool, offline=offline, jobs=jobs)
