"""Placement by expected start time, the warm buffer and cloud-only jobs first: plain data in."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from campus_factory.domain import JobGroup
from campus_factory.planner import PilotView, SiteHealth, SiteSpec, explain_plan, plan
from campus_factory.planner.health import HealthSettings, PilotOutcome, site_health
from campus_factory.planner.warm import BUFFER_MAX_JOBS, buffer_jobs, expected_start_s

NOW = 1_000_000.0


def S(name: str, **kw: Any) -> SiteSpec:
    base: dict[str, Any] = {"cpus": 8, "memory_mb": 32000, "max_pilots": 100, "max_queued": 100}
    base["max_submit_per_cycle"] = 100
    base["sizing"] = "fit"
    base.update(kw)
    return SiteSpec(name, **base)


def G(gid: str, n: int, **kw: Any) -> JobGroup:
    base: dict[str, Any] = {"cpus": 1, "memory_mb": 2000, "disk_mb": 0}
    base.update(kw)
    return JobGroup(gid, n, **base)


def slow(latency: float) -> SiteHealth:
    return SiteHealth(join_latency_s=latency, latency_samples=10)


def test_new_pilots_go_to_a_faster_site_before_a_slow_preferred_one() -> None:
    sites = [S("hpc", rank=2, health=slow(360)), S("campus", rank=1, health=slow(165))]
    p = plan([G("a", 10)], sites, [], NOW)
    assert p.site("campus").submit == 10 and p.site("hpc").submit == 0
    # within the tolerance the preference order holds
    near = [S("hpc", rank=2, health=slow(200)), S("campus", rank=1, health=slow(165))]
    assert plan([G("a", 10)], near, [], NOW).site("hpc").submit == 10
    # capacity already at the slow site is used first, whatever its latency
    there = [PilotView("r1", "hpc", "running", NOW - 60, False, free_cpus=1, cpus=1)]
    q = plan([G("a", 10)], sites, there, NOW)
    assert q.group("a").placements[0].site == "hpc" and q.group("a").placements[0].into_existing == 1
    assert q.site("campus").submit == 9


def test_a_congested_site_is_expected_to_start_late() -> None:
    waiting = [PilotView("q1", "hpc", "queued", NOW - 1500, cpus=1)]
    site = S("hpc", health=slow(300))
    assert expected_start_s(site, waiting, NOW) == 1500
    assert expected_start_s(site, [], NOW) == 300
    assert expected_start_s(S("new"), [], NOW) == 0  # no history: tried first


def test_the_warm_buffer_provisions_for_arrivals_during_the_start_latency() -> None:
    sites = [S("campus", health=slow(180))]
    still = plan([G("a", 10)], sites, [], NOW)
    arriving = plan([G("a", 10, arrivals_per_hour=120)], sites, [], NOW)  # 2 a minute x 3 minutes
    assert still.site("campus").submit == 10
    assert arriving.site("campus").submit == 16 and arriving.group("a").buffer == 6
    assert "warm buffer for 6 arriving job(s) (120/h x 180 s start at campus)" in arriving.group("a").reason
    text = explain_plan(arriving)
    assert "warm buffer: 6 job(s) expected to arrive while new pilots start" in text
    assert "start latency 180 s (median from submission to joining, 10 recent pilot(s))" in text
    assert buffer_jobs(G("a", 1, arrivals_per_hour=1e9), 180) == BUFFER_MAX_JOBS
    assert buffer_jobs(G("a", 1), 180) == 0
    # the buffer keeps an idle pilot that arriving jobs would take, and cancels one nothing needs
    idle = [PilotView(f"r{i}", "campus", "joined", NOW - 600, False, cpus=1, idle_since=NOW - 60) for i in range(2)]
    kept = plan([G("a", 1, arrivals_per_hour=20)], sites, idle, NOW).site("campus")
    assert kept.cancel == () and kept.submit == 0
    gone = plan([G("a", 1)], sites, idle, NOW).site("campus")
    assert [c.pilot_id for c in gone.cancel] == ["r1"]


def test_cloud_only_jobs_are_placed_on_cloud_capacity_before_jobs_that_run_anywhere() -> None:
    cloud = S("cloud", max_pilots=1, max_queued=1, max_submit_per_cycle=1)  # 8 cores
    campus = S("campus")
    anywhere = G("a-any", 8)
    only = G("z-cloud", 4, requirements="TARGET.IsCloudNode =?= true")  # same size, sorts after
    cloud = replace(cloud, slot_ad=None)
    from campus_factory.planner.slotad import default_slot_ad

    ad = default_slot_ad(cloud)
    attrs = tuple((k, "true" if k == "IsCloudNode" else v) for k, v in ad.attributes)
    cloud = replace(cloud, slot_ad=type(ad)(attrs), rank=1)
    p = plan([anywhere, only], [cloud, campus], [], NOW)
    assert p.group("z-cloud").placements[0].site == "cloud" and p.group("z-cloud").held_back == 0
    # the jobs that run anywhere get the cloud's 4 cores left, then campus
    assert [(x.site, x.jobs) for x in p.group("a-any").placements] == [("cloud", 4), ("campus", 4)]


def test_health_learns_the_latency_to_joining_the_pool() -> None:
    history = [
        PilotOutcome(f"p{i}", "joined", NOW - 1000, NOW - 1000 + 60, NOW - 1000 + j)
        for i, j in enumerate((100, 200, 400))
    ]
    h = site_health(history, NOW, HealthSettings())
    assert h.join_latency_s == 200 and h.latency_samples == 3 and h.start_latency_s == 60


def test_plan_explain_shows_the_learned_latency_and_the_buffer_per_group() -> None:
    from campus_factory.planner import group_explanation
    from campus_factory.planner.explain import render_group_explanation

    sites = [S("campus", health=slow(180))]
    g = G("a", 10, arrivals_per_hour=120)
    data = group_explanation(plan([g], sites, [], NOW), g, sites)
    assert data["buffer"] == 6
    (row,) = data["sites"]
    assert row["start"].startswith("start latency 180 s (median from submission to joining, 10 recent pilot(s))")
    assert "a new pilot is expected to join in 180 s" in render_group_explanation(data)
