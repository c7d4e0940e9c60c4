"""What operators and budgets change in a cycle, between the config and the plan.

Pure functions over plain data, called by the loop:

* :func:`effective_sites`: the configured sites with the operators' overrides applied
  (``site scale`` floor/ceiling, a paused or draining site gets no new pilots);
* :func:`apply_budget`: the plan's submissions cut to what each site's and the overall spend
  ceilings allow, site by site in preference order so the overall ceiling is never raced. At a
  cloud site with instance types a core costs what it costs in the dearest type per core, and a
  new pilot counts the cores of the largest type: a ceiling is never overrun for want of knowing
  which type each pilot is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from ..config import Config, SiteConfig
from ..domain import InstanceShape
from ..ledger.controls import SiteControl
from ..ledger.overrides import SiteOverride, apply_override
from ..planner.types import Plan
from .budget import Ceiling, PilotUsage, Spending, allowed_given

__all__ = ["apply_budget", "budget_costs", "effective_sites", "has_ceiling"]

Types = Mapping[str, tuple[InstanceShape, ...]]


def budget_costs(sites: Sequence[SiteConfig], instance_types: Types | None = None) -> dict[str, float]:
    """Cost per core-hour of each site for the spend ceilings: ``cost_per_core_hour``, or at a site
    with instance types (their shapes as read) the dearest per core of them, if higher."""
    types = instance_types or {}
    return {
        s.name: max([s.cost_per_core_hour, *(t.cost_per_hour / t.cpus for t in types.get(s.name, ()))]) for s in sites
    }


def _pilot_cpus(site: SiteConfig, instance_types: Types) -> int:
    """The cores a new pilot counts for: the slot's, or the largest instance type's."""
    shapes = instance_types.get(site.name, ())
    return max(t.cpus for t in shapes) if shapes else site.slot.cpus


def effective_sites(
    sites: Iterable[SiteConfig],
    overrides: Mapping[str, SiteOverride],
    controls: Mapping[str, SiteControl],
) -> tuple[SiteConfig, ...]:
    """Sites as this cycle sees them: overrides applied, paused sites disabled."""
    out = []
    for site in sites:
        update: dict[str, object] = {}
        override = overrides.get(site.name)
        if override is not None:
            update["limits"] = apply_override(site.limits, override)
        control = controls.get(site.name)
        if control is not None and (control.paused or control.draining):
            update["enabled"] = False
        out.append(site.model_copy(update=update) if update else site)
    return tuple(out)


def has_ceiling(config: Config, sites: Sequence[SiteConfig], instance_types: Types | None = None) -> bool:
    """Whether any spend ceiling can cut a submission: a site that costs, and a ceiling set."""
    if not any(budget_costs(sites, instance_types).values()):
        return False
    b = config.budget
    if b.max_per_hour is not None or b.max_per_day is not None:
        return True
    return any(s.budget.max_per_hour is not None or s.budget.max_per_day is not None for s in sites)


def apply_budget(
    plan: Plan,
    config: Config,
    sites: Sequence[SiteConfig],
    pilots: Iterable[PilotUsage],
    now: float,
    instance_types: Types | None = None,
) -> Plan:
    """The plan with each site's submissions cut to what the spend ceilings allow
    (``instance_types``: the shapes of cloud sites' types, as read)."""
    types = instance_types or {}
    costs = budget_costs(sites, types)
    if not has_ceiling(config, sites, types):
        return plan
    spending = Spending.of(pilots, costs, now)  # once: every site's decision reads it
    overall = Ceiling(config.budget.max_per_hour, config.budget.max_per_day)
    by_name = {s.name: s for s in sites}
    changed = {}
    for sp in plan.sites:  # plan.sites is in preference (config) order
        site = by_name.get(sp.site)
        if site is None or sp.submit <= 0:
            continue
        decision = allowed_given(
            site.name,
            sp.submit,
            _pilot_cpus(site, types),
            spending,
            costs,
            site_ceiling=Ceiling(site.budget.max_per_hour, site.budget.max_per_day),
            overall=overall,
        )
        spending.add(site.name, decision.allowed, _pilot_cpus(site, types), costs)
        if decision.allowed < sp.submit:
            changed[sp.site] = dataclasses.replace(
                sp,
                submit=decision.allowed,
                bound_by="budget",
                reasons=(*sp.reasons, f"budget: {decision.reason}"),
            )
    if not changed:
        return plan
    return dataclasses.replace(plan, sites=tuple(changed.get(sp.site, sp) for sp in plan.sites))
