"""The real factory loop on the simulated clock, with a pluggable provisioning policy.

:class:`SimFactory` is :class:`campus_factory.loop.factory.Factory` — the same observe (sites and
pool), plan inputs (slot ads, health, learned ads), act (submit, cancel) and record (ledger)
code — through the two hooks the loop offers a simulator:

* :meth:`make_plan` asks a :class:`~.policies.Policy` (ours is the real planner with the
  factory's match cache; the others are the baselines of the provisioning benchmark);
* :meth:`new_id` numbers submissions and pilots from a counter instead of ``uuid4``, so that
  a run is reproducible for a given seed (the planner breaks ties by pilot id).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from ..config import Config
from ..demand.base import DemandSource
from ..domain import JobGroup
from ..ledger import Ledger
from ..loop.factory import Factory
from ..planner import PilotView, Plan, SiteSpec
from ..pool.base import PoolView
from ..providers.base import Provider
from .policies import PlannerPolicy, Policy

__all__ = ["Clock", "SimFactory"]


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
        super().__init__(config, ledger, demand, providers, pool=pool, clock=clock)
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
