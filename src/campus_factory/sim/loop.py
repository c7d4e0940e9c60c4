"""The real factory loop on the simulated clock, with a pluggable provisioning policy.

:class:`SimFactory` is :class:`campus_factory.loop.factory.Factory` — the same observe (sites and
pool), plan inputs (slot ads, health, learned ads), act (submit, cancel) and record (ledger)
code — through the hooks the loop offers a simulator:

* :meth:`make_plan` asks a :class:`~.policies.Policy` (ours is the real planner with the
  factory's match cache; the others are the baselines of the provisioning benchmark);
* :meth:`new_id` numbers submissions and pilots from a counter instead of ``uuid4``, so that
  a run is reproducible for a given seed (the planner breaks ties by pilot id);
* :meth:`blocking` reads the in-memory demand, pool and job runs at once, not in a thread.

Its job tracker reads the simulated pool's running jobs, so job runs reach the ledger with their
job group and the planner learns each group's runtime from them, as in a real run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import ParamSpec, TypeVar

from ..config import Config
from ..demand.base import DemandSource
from ..domain import JobGroup
from ..ledger import Ledger
from ..loop.factory import Factory
from ..loop.runtimes import RunGroups
from ..loop.usage import JobTracker
from ..planner import PilotView, Plan, SiteSpec
from ..pool.base import PoolView
from ..pool.htcondor import RunningJob
from ..providers.base import Provider
from .policies import PlannerPolicy, Policy
from .pool import SimPool

__all__ = ["Clock", "SimFactory"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Clock:
    """The simulated clock: a callable returning the current simulated time."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class SimFactory(Factory):
    """The factory loop driven by the simulator (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        demand: DemandSource,
        providers: Mapping[str, Provider],
        *,
        pool: PoolView,
        clock: Clock,
        policy: Policy,
    ) -> None:
        jobs = JobTracker(_SimJobs(pool)) if isinstance(pool, SimPool) else None
        super().__init__(config, ledger, demand, providers, pool=pool, clock=clock, jobs=jobs)
        if isinstance(pool, SimPool):
            self.runtimes.groups = _SimRunGroups(pool)
        self.policy = policy
        if isinstance(policy, PlannerPolicy):
            policy.cache = self.match_cache
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        return f"{next(self._ids):010x}"

    def make_plan(
        self, groups: Sequence[JobGroup], specs: Sequence[SiteSpec], views: Sequence[PilotView], now: float
    ) -> Plan:
        return self.policy.plan(groups, specs, views, now)

    async def blocking(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """At once: the simulated demand, pool and job source are in memory, and nothing else runs
        meanwhile on the simulated clock (a thread per read would only cost the hand-offs)."""
        return fn(*args, **kwargs)


class _SimRunGroups(RunGroups):
    """The simulated pool knows each job's group (the real loop remembers it from the demand)."""

    def __init__(self, pool: SimPool) -> None:
        super().__init__(max_jobs=0)
        self.pool = pool

    def group_of(self, job_id: str) -> str | None:
        return self.pool.group_of(job_id)


class _SimJobs:
    """The job tracker's source: the simulated pool's running jobs and their ends."""

    def __init__(self, pool: SimPool) -> None:
        self.pool = pool

    def running_jobs(self) -> list[RunningJob]:
        return self.pool.jobs_on_pilots()

    def run_ends(self, runs: list[tuple[str, str, float]]) -> dict[tuple[str, str, float], float | bool | None]:
        return self.pool.run_ends(runs)
