"""The planner: a pure function from observations to a plan with reasons."""

from .core import fits, jobs_per_pilot, plan
from .explain import explain_plan
from .types import Cancel, GroupDecision, PilotView, Plan, SitePlan, SiteSpec

__all__ = [
    "Cancel",
    "GroupDecision",
    "PilotView",
    "Plan",
    "SitePlan",
    "SiteSpec",
    "explain_plan",
    "fits",
    "jobs_per_pilot",
    "plan",
]
