"""Spend ceilings at a cloud site priced per instance type (cost_per_hour), not per core."""

from __future__ import annotations

from campus_factory.config import parse_config
from campus_factory.domain import InstanceShape
from campus_factory.loop.adjust import apply_budget, budget_costs, has_ceiling
from campus_factory.planner.types import Plan, SitePlan

NOW = 1_000_000.0
TYPES = (InstanceShape("a2", 2, 4000, 0, 0, 0.2), InstanceShape("a8", 8, 16000, 0, 0, 0.4))


def test_a_site_priced_per_type_is_held_to_its_ceiling_counting_the_dearest_core_and_largest_type() -> None:
    types = [{"name": "a2", "cost_per_hour": 0.2}, {"name": "a8", "cost_per_hour": 0.4}]
    site = {"name": "c", "provider": "ec2", "cloud": {"image": "ami-1", "instance_types": types}}
    cfg = parse_config({"sites": [{**site, "budget": {"max_per_hour": 1.0}}]})
    plan = Plan(NOW, (SitePlan("c", 10, (), 10, 0, None, ()),), ())
    assert budget_costs(cfg.sites, {"c": TYPES}) == {"c": 0.1}  # a2: 0.1 per core, a8: 0.05
    assert not has_ceiling(cfg, cfg.sites)  # cost_per_core_hour = 0 and no shapes known: nothing costs
    assert apply_budget(plan, cfg, cfg.sites, [], NOW).site("c").submit == 10
    cut = apply_budget(plan, cfg, cfg.sites, [], NOW, {"c": TYPES}).site("c")
    # a new pilot counts 8 cores at 0.1: 0.8 per hour, so one fits under 1.0
    assert cut.submit == 1 and cut.bound_by == "budget"
