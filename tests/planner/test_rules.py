"""Planner rules, one table row each: plain data in, a plan out, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from campus_factory.domain import JobGroup
from campus_factory.planner import MatchCache, PilotView, Plan, SiteHealth, SiteSpec, plan
from campus_factory.planner.slotad import SlotPolicy, build_slot_ad

NOW = 1_000_000.0


def S(name: str, **kw: Any) -> SiteSpec:
    base: dict[str, Any] = {
        "cpus": 4,
        "memory_mb": 8000,
        "max_pilots": 10,
        "max_queued": 10,
        "max_submit_per_cycle": 10,
    }
    base.update(kw)
    return SiteSpec(name, **base)


def G(gid: str, n: int, **kw: Any) -> JobGroup:
    base: dict[str, Any] = {"cpus": 1, "memory_mb": 1000, "disk_mb": 0}
    base.update(kw)
    return JobGroup(gid, n, **base)


def P(pid: str, site: str, state: str = "running", since: float = NOW - 100, **kw: Any) -> PilotView:
    return PilotView(pid, site, state, since, **kw)


@dataclass
class Case:
    name: str
    groups: list[JobGroup]
    sites: list[SiteSpec]
    pilots: list[PilotView] = field(default_factory=list)
    submit: dict[str, int] = field(default_factory=dict)
    cancel: dict[str, int] = field(default_factory=dict)
    bound: dict[str, str | None] = field(default_factory=dict)
    placed: dict[str, dict[str, int]] = field(default_factory=dict)  # group -> site -> jobs
    held: dict[str, int] = field(default_factory=dict)


def start_only(site: str, start: str, **kw: Any) -> SiteSpec:
    s = S(site, **kw)
    ad = build_slot_ad(site, s.cpus, s.memory_mb, s.disk_mb, s.gpus, s.walltime_s, SlotPolicy(start=start))
    return replace(s, slot_ad=ad)


BACKOFF = SiteHealth("backoff", 3, NOW + 60)
PROBING = SiteHealth("probing", 3, NOW - 1)
BLACK_HOLE = SiteHealth("backoff", 3, NOW + 60, black_hole=True)

CASES = [
    # -- counting supply: first-fit decreasing on cpus, memory, gpus
    Case("pack 1-core jobs 4 per pilot", [G("a", 10)], [S("x")], submit={"x": 3}),
    Case("memory binds before cpus", [G("a", 10, memory_mb=4000)], [S("x")], submit={"x": 5}),
    Case("gpus bind", [G("a", 4, gpus=1)], [S("x", gpus=2)], submit={"x": 2}),
    Case(
        "small jobs fill the big jobs' leftovers (FFD)",
        [G("big", 2, cpus=3), G("small", 2)],
        [S("x")],
        submit={"x": 2},
        placed={"small": {"x": 2}},
    ),
    Case("queued pilots count as capacity", [G("a", 8)], [S("x")], [P("q1", "x", "queued")], submit={"x": 1}),
    Case("retiring pilots are not capacity", [G("a", 4)], [S("x")], [P("r1", "x", "retiring")], submit={"x": 1}),
    Case(
        "idle running pilot with free cores counts",
        [G("a", 2)],
        [S("x")],
        [P("p1", "x", busy=True, free_cpus=2, free_memory_mb=4000)],
        submit={"x": 0},
    ),
    Case(
        "idle slot without enough memory is not capacity",
        [G("a", 1, memory_mb=6000)],
        [S("x")],
        [P("p1", "x", busy=True, free_cpus=3, free_memory_mb=2000)],
        submit={"x": 1},
    ),
    Case(
        "idle slot without a GPU is not capacity",
        [G("a", 1, gpus=1)],
        [S("x", gpus=1)],
        [P("p1", "x", busy=True, free_cpus=3, free_memory_mb=6000, free_gpus=0)],
        submit={"x": 1},
    ),
    Case("fully busy pilot is not capacity", [G("a", 1)], [S("x")], [P("p1", "x", busy=True)], submit={"x": 1}),
    Case(
        "pilot retiring before the job ends is not capacity",
        [G("a", 1, attributes={"MaxWallTimeMins": "120"})],
        [S("x")],
        [P("p1", "x", busy=False, retire_at=NOW + 3600)],
        submit={"x": 1},
    ),
    Case(
        "assumed runtime applies to jobs that declare none",
        [G("a", 1)],
        [S("x", job_runtime_s=1800)],
        [P("p1", "x", busy=False, retire_at=NOW + 600)],
        submit={"x": 1},
    ),
    Case("pilot with time left is capacity", [G("a", 1)], [S("x")], [P("p1", "x", busy=False, retire_at=NOW + 9000)]),
    # -- matching
    Case("unmatched group gets nothing", [G("a", 5, memory_mb=99999)], [S("x")], submit={"x": 0}, held={"a": 0}),
    Case(
        "START refusal moves the group to the next site",
        [G("a", 4, memory_mb=2000)],
        [start_only("x", "TARGET.RequestMemory <= 1000"), S("y")],
        submit={"x": 0, "y": 1},
    ),
    # -- placement
    Case("config order breaks ties", [G("a", 4)], [S("x"), S("y")], submit={"x": 1, "y": 0}),
    Case("higher rank first", [G("a", 4)], [S("x"), S("y", rank=1)], submit={"x": 0, "y": 1}),
    Case(
        "cheaper first at equal rank",
        [G("a", 4)],
        [S("x", cost_per_core_hour=0.05), S("y", cost_per_core_hour=0.01)],
        submit={"x": 0, "y": 1},
    ),
    Case("rank beats cost", [G("a", 4)], [S("x", rank=1, cost_per_core_hour=9), S("y")], submit={"x": 1}),
    Case(
        "faster start first at equal rank and cost",
        [G("a", 4)],
        [S("x", health=SiteHealth(start_latency_s=600)), S("y", health=SiteHealth(start_latency_s=30))],
        submit={"x": 0, "y": 1},
    ),
    Case(
        "start latencies within a minute keep config order",
        [G("a", 4)],
        [S("x", health=SiteHealth(start_latency_s=50)), S("y", health=SiteHealth(start_latency_s=10))],
        submit={"x": 1, "y": 0},
    ),
    Case(
        "spread when one site cannot take all",
        [G("a", 20)],
        [S("x", max_submit_per_cycle=2), S("y")],
        submit={"x": 2, "y": 3},
        bound={"x": "max_submit_per_cycle", "y": None},
        placed={"a": {"x": 8, "y": 12}},
    ),
    # -- limits
    Case("max_submit_per_cycle", [G("a", 40)], [S("x", max_submit_per_cycle=3)], submit={"x": 3}, held={"a": 28}),
    Case(
        "max_queued counts queued pilots",
        [G("a", 40)],
        [S("x", max_queued=3)],
        [P("q1", "x", "queued"), P("q2", "x", "requested")],
        submit={"x": 1},
        bound={"x": "max_queued"},
    ),
    Case(
        "max_pilots counts every live pilot, retiring too",
        [G("a", 40)],
        [S("x", max_pilots=3)],
        [P("r", "x", "retiring"), P("b", "x", busy=True)],
        submit={"x": 1},
        bound={"x": "max_pilots"},
    ),
    Case(
        "already over a limit: nothing",
        [G("a", 40)],
        [S("x", max_pilots=1)],
        [P("b", "x", busy=True), P("c", "x", busy=True)],
        submit={"x": 0},
    ),
    Case("ceiling", [G("a", 40)], [S("x", ceiling=2)], submit={"x": 2}, bound={"x": "ceiling"}),
    Case("floor with no demand", [], [S("x", floor=2)], submit={"x": 2}),
    Case("floor counts live pilots", [], [S("x", floor=2)], [P("b", "x", busy=True)], submit={"x": 1}),
    Case("floor within limits", [], [S("x", floor=5, max_submit_per_cycle=2)], submit={"x": 2}),
    Case(
        "floor keeps idle pilots",
        [],
        [S("x", floor=1, idle_timeout_s=10)],
        [P("p1", "x", since=NOW - 100), P("p2", "x", since=NOW - 200)],
        cancel={"x": 1},
    ),
    Case(
        "ceiling lowered: queued pilots cancelled first",
        [G("a", 40)],
        [S("x", ceiling=1)],
        [P("p1", "x", busy=True), P("q1", "x", "queued")],
        submit={"x": 0},
        cancel={"x": 1},
    ),
    # -- health and policy
    Case("backoff: no new pilots", [G("a", 4)], [S("x", health=BACKOFF)], submit={"x": 0}, bound={"x": "backoff"}),
    Case("backoff spills to other sites", [G("a", 4)], [S("x", health=BACKOFF), S("y")], submit={"y": 1}),
    Case("black hole flagged", [G("a", 4)], [S("x", health=BLACK_HOLE)], submit={"x": 0}, bound={"x": "black_hole"}),
    Case("probing: one pilot", [G("a", 40)], [S("x", health=PROBING)], submit={"x": 1}, bound={"x": "probing"}),
    Case("probing: one at a time", [G("a", 40)], [S("x", health=PROBING)], [P("q", "x", "queued")], submit={"x": 0}),
    Case("disabled: nothing new", [G("a", 4)], [S("x", enabled=False)], submit={"x": 0}, bound={"x": "disabled"}),
    Case(
        "disabled: queued pilots cancelled",
        [G("a", 4)],
        [S("x", enabled=False, floor=1)],
        [P("q", "x", "queued")],
        cancel={"x": 1},
    ),
    Case(
        "unobserved site: no action",
        [G("a", 4)],
        [S("x", healthy=False), S("y")],
        submit={"x": 0, "y": 1},
        bound={"x": "unhealthy"},
    ),
    # -- offline ads
    Case("offline matches with no visible group", [], [S("x", offline_requests=6)], submit={"x": 2}),
    Case(
        "offline matches ignored when groups explain them", [G("a", 4)], [S("x", offline_requests=40)], submit={"x": 1}
    ),
    # -- cancellation
    Case(
        "unused queued pilots cancelled newest first",
        [G("a", 4)],
        [S("x")],
        [P("q1", "x", "queued", since=NOW - 50), P("q2", "x", "queued", since=NOW - 10)],
        cancel={"x": 1},
    ),
    Case(
        "idle pilots leave only after idle_timeout",
        [],
        [S("x", idle_timeout_s=600)],
        [P("p1", "x", since=NOW - 100), P("p2", "x", since=NOW - 700)],
        cancel={"x": 1},
    ),
    Case("busy pilots stay", [], [S("x", idle_timeout_s=0)], [P("p1", "x", busy=True)], cancel={"x": 0}),
    Case(
        "a requested pilot without a job id cannot be cancelled",
        [],
        [S("x")],
        [P("r1", "x", "requested", has_job_id=False)],
        cancel={"x": 0},
    ),
]


def run(case: Case) -> Plan:
    return plan(case.groups, case.sites, case.pilots, NOW)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rule(case: Case) -> None:
    p = run(case)
    for site, n in case.submit.items():
        assert p.site(site).submit == n, (site, p.site(site).reasons)
    for site, n in case.cancel.items():
        assert len(p.site(site).cancel) == n, (site, p.site(site).cancel)
    for site, b in case.bound.items():
        assert p.site(site).bound_by == b, (site, p.site(site).reasons)
    for gid, where in case.placed.items():
        got = {pl.site: pl.jobs for pl in p.group(gid).placements}
        assert got == where, p.group(gid).reason
    for gid, n in case.held.items():
        assert p.group(gid).held_back == n


def test_which_pilots_are_cancelled() -> None:
    p = run(CASES[[c.name for c in CASES].index("unused queued pilots cancelled newest first")])
    assert [(c.pilot_id, c.graceful) for c in p.site("x").cancel] == [("q2", False)]
    p = run(CASES[[c.name for c in CASES].index("idle pilots leave only after idle_timeout")])
    assert [(c.pilot_id, c.graceful) for c in p.site("x").cancel] == [("p2", True)]


def test_unmatched_group_is_reported_with_reasons() -> None:
    p = plan([G("a", 5, memory_mb=99999)], [S("x"), S("y")], [], NOW)
    d = p.group("a")
    assert d.site is None and d.matched == () and d.placements == ()
    assert "matches no site" in d.reason and "too big for 2 site(s)" in d.reason
    assert any("match no site" in n for n in p.notes)


def test_held_back_group_names_the_limit() -> None:
    p = plan([G("a", 40)], [S("x", max_submit_per_cycle=3)], [], NOW)
    d = p.group("a")
    assert d.held_back == 28 and d.bound_by == ("x: max_submit_per_cycle",)
    assert "held back by x: max_submit_per_cycle" in d.reason


def test_pilot_at_an_unknown_site_is_noted() -> None:
    p = plan([], [S("x")], [P("z1", "gone")], NOW)
    assert any("gone" in n for n in p.notes)


def test_plan_is_json_ready_and_cache_changes_nothing() -> None:
    import json

    case = CASES[[c.name for c in CASES].index("spread when one site cannot take all")]
    cache = MatchCache()
    first = plan(case.groups, case.sites, case.pilots, NOW, cache=cache)
    second = plan(case.groups, case.sites, case.pilots, NOW, cache=cache)
    assert first == second == run(case)
    assert cache.hits >= 2
    json.dumps(first.to_dict())


def test_a_running_pilot_counts_for_jobs_as_long_as_its_walltime() -> None:
    """Jobs assumed as long as a whole pilot (job_runtime >= walltime) still land on running
    pilots: without the half-walltime cap the planner started a new pilot every cycle."""
    site = S("a", cpus=1, walltime_s=600.0, job_runtime_s=1800.0)
    running = [P(f"p{i}", "a", "running", since=NOW - 10, retire_at=NOW + 560) for i in range(3)]
    out = plan([G("g", 3)], [site], running, NOW)
    assert out.site("a").submit == 0
    old = [P("q", "a", "running", since=NOW - 400, retire_at=NOW + 170)]  # less than half left
    assert plan([G("g", 1)], [site], old, NOW).site("a").submit == 1
