"""The planner: a pure function from observations to a plan with reasons.

``plan(demand, sites, pilots, now, *, cache=None) -> Plan``; :mod:`.inputs` builds its inputs
from config, ledger records and pool slots; :mod:`.health` computes per-site backoff;
:mod:`.explain` renders plans and single job groups.
"""

from .core import fits, jobs_per_pilot, plan, site_order
from .explain import explain_group, explain_plan, group_explanation
from .health import HealthSettings, PilotOutcome, site_health
from .match import MatchCache, MatchOutcome, group_key
from .slotad import build_slot_ad, start_expression
from .types import (
    Cancel,
    GroupDecision,
    PilotView,
    Placement,
    Plan,
    SiteHealth,
    SitePlan,
    SiteSpec,
    SlotAd,
)

__all__ = [
    "Cancel",
    "GroupDecision",
    "HealthSettings",
    "MatchCache",
    "MatchOutcome",
    "PilotOutcome",
    "PilotView",
    "Placement",
    "Plan",
    "SiteHealth",
    "SitePlan",
    "SiteSpec",
    "SlotAd",
    "build_slot_ad",
    "explain_group",
    "explain_plan",
    "fits",
    "group_explanation",
    "group_key",
    "jobs_per_pilot",
    "plan",
    "site_health",
    "site_order",
    "start_expression",
]
