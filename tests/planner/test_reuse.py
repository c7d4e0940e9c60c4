"""Claim reuse: idle jobs left to the claims of their group's jobs about to end (plain data)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from campus_factory.domain import JobGroup
from campus_factory.planner import SiteHealth, SiteSpec, explain_plan, plan
from campus_factory.planner.reuse import finishing_claims, with_running_jobs

NOW = 1_000_000.0


def S(name: str = "campus", latency: float = 180.0, **kw: Any) -> SiteSpec:
    base: dict[str, Any] = {"cpus": 8, "memory_mb": 32000, "max_pilots": 100, "max_queued": 100}
    base.update(max_submit_per_cycle=100, sizing="fit", health=SiteHealth(join_latency_s=latency, latency_samples=9))
    base.update(kw)
    return SiteSpec(name, **base)


def G(n: int, started: tuple[float, ...] = (), *, runs: int = 5, runtime: float = 300.0, **kw: Any) -> JobGroup:
    return JobGroup(
        "a",
        n,
        cpus=1,
        memory_mb=2000,
        disk_mb=0,
        learned_runs=runs,
        learned_runtime_s=runtime,
        running_started=started,
        **kw,
    )


def test_running_jobs_ending_before_a_new_pilot_joins_take_idle_jobs_instead() -> None:
    # runtime 300 s, a new pilot joins in 180 s: jobs started 150 s and 200 s ago end within it;
    # one started 10 s ago (ends in 290 s) and one 400 s ago (past its expected end) do not
    started = (NOW - 150, NOW - 200, NOW - 10, NOW - 400)
    assert finishing_claims(G(5, started), 180.0, NOW) == 2
    p = plan([G(5, started)], [S()], [], NOW)
    d = p.group("a")
    assert d.claims == 2 and p.site("campus").submit == 3 and d.held_back == 0
    assert "2 to the claims of running jobs of the group expected to end within 180 s" in d.reason
    assert "2 to the claims of running jobs" in explain_plan(p)
    # fewer idle jobs than finishing claims: no new pilot at all
    q = plan([G(1, started)], [S()], [], NOW)
    assert q.group("a").claims == 1 and q.site("campus").submit == 0


def test_no_runtime_no_latency_or_no_running_jobs_count_nothing() -> None:
    started = (NOW - 150, NOW - 200)
    assert finishing_claims(G(5, started, runs=1), 180.0, NOW) == 0  # too few runs to know the runtime
    assert finishing_claims(G(5), 180.0, NOW) == 0
    assert finishing_claims(G(5, started), 0.0, NOW) == 0  # a site with no start history is tried at once
    assert plan([G(5, started)], [S(latency=0.0, health=None)], [], NOW).site("campus").submit == 5
    # a declared runtime counts as a learned one does
    declared = G(5, (NOW - 100,), runs=0, attributes={"MaxWallTimeMins": "4"})
    assert finishing_claims(declared, 180.0, NOW) == 1


def test_finishing_claims_absorb_the_warm_buffer_too() -> None:
    started = tuple(NOW - 150 - i for i in range(6))  # six jobs end within the start latency
    arriving = G(2, started, arrivals_per_hour=120)  # 2 a minute x 3 minutes: 6 in the buffer
    p = plan([arriving], [S()], [], NOW)
    d = p.group("a")
    assert d.claims == 2 and d.buffer == 2 and p.site("campus").submit == 2  # 6 arriving less 4 spare claims
    assert "less 4 to claims of finishing jobs" in d.reason
    without = plan([G(2, arrivals_per_hour=120)], [S()], [], NOW)
    assert without.site("campus").submit == 8  # 2 idle + 6 arriving


def test_with_running_jobs_sets_only_the_groups_it_knows() -> None:
    a, b = JobGroup("a", 1), JobGroup("b", 1)
    out = with_running_jobs([a, b], {"a": [NOW - 5, NOW - 50]})
    assert out[0].running_started == (NOW - 50, NOW - 5) and out[1] is b


@given(
    st.lists(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False), max_size=30),
    st.floats(min_value=-1e4, max_value=1e5) | st.just(float("nan")),
    st.floats(min_value=1, max_value=1e6),
)
def test_finishing_claims_is_bounded_by_the_running_jobs(ago: list[float], within: float, runtime: float) -> None:
    g = G(3, tuple(NOW - a for a in ago), runtime=runtime)
    n = finishing_claims(g, within, NOW)
    assert 0 <= n <= len(ago)
    if not within > 0:
        assert n == 0


def test_long_jobs_count_no_claims_their_median_cannot_time() -> None:
    # runtime 7200 s, more than 3 x the 180 s window: a job at its median ends within it rarely
    long = G(5, (NOW - 7100,), runtime=7200.0)
    assert finishing_claims(long, 180.0, NOW) == 0
    assert finishing_claims(G(5, (NOW - 450,), runtime=540.0), 180.0, NOW) == 1  # 3 x 180 s: counted
    assert plan([long], [S()], [], NOW).site("campus").submit == 5
