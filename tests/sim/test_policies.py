"""The baseline policies of the provisioning benchmark keep to a site's limits, cores included."""

from __future__ import annotations

from campus_factory.domain import JobGroup
from campus_factory.planner import PilotView, SiteSpec
from campus_factory.sim.policies import CobaldController, OriginalRule

NOW = 1_000_000.0


def site(**kw: object) -> SiteSpec:
    base: dict[str, object] = {"cpus": 16, "memory_mb": 64000, "max_pilots": 40, "max_queued": 40}
    base["max_submit_per_cycle"] = 40
    base.update(kw)
    return SiteSpec("hpc", **base)  # type: ignore[arg-type]


def test_the_original_rule_starts_a_glidein_per_idle_job_within_pilot_and_core_limits() -> None:
    groups = [JobGroup("g", 100, cpus=1, memory_mb=1000)]
    assert OriginalRule().plan(groups, [site()], [], NOW).site("hpc").submit == 40
    running = [PilotView(f"p{i}", "hpc", "running", NOW - 60, True) for i in range(3)]
    # 100 cores: 6 whole 16-core pilots, 3 of them already there
    assert OriginalRule().plan(groups, [site(max_cores=100)], running, NOW).site("hpc").submit == 3


def test_the_cobald_controller_never_targets_more_pilots_than_the_cores_allow() -> None:
    groups = [JobGroup("g", 1000, cpus=1, memory_mb=1000)]
    c = CobaldController(rate=50.0)
    for _ in range(5):  # utilisation high: demand climbs by 50 a cycle, up to the cap
        c.plan(groups, [site(max_cores=64)], [], NOW)
    assert c.demand["hpc"] == 4.0  # 64 cores / 16
