"""Properties of every plan: limits hold, unmatched groups get nothing, same input same plan."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campus_factory.domain import JobGroup
from campus_factory.planner import MatchCache, PilotView, SiteHealth, SiteSpec, plan
from campus_factory.planner.types import QUEUED_STATES

NOW = 1_000_000.0
REQS = [
    "true",
    "TARGET.Memory >= RequestMemory",
    'TARGET.CampusFactorySite == "s0"',
    "TARGET.HasMagic =?= true",
    "TARGET.Cpus >= 2 * RequestCpus",
]
STATES = ["requested", "queued", "running", "joined", "retiring"]

groups_st = st.lists(
    st.builds(
        lambda i, n, c, m, gpu, r: JobGroup(f"g{i}", n, cpus=c, memory_mb=m, disk_mb=0, gpus=gpu, requirements=r),
        st.integers(0, 30),
        st.integers(0, 60),
        st.integers(1, 8),
        st.integers(0, 40000),
        st.integers(0, 2),
        st.sampled_from(REQS),
    ),
    max_size=8,
    unique_by=lambda g: g.group_id,
)


@st.composite
def sites_st(draw: st.DrawFn) -> list[SiteSpec]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        max_pilots = draw(st.integers(0, 12))
        floor = draw(st.integers(0, max_pilots))
        ceiling = draw(st.none() | st.integers(floor, max_pilots))
        health = draw(
            st.sampled_from(
                [
                    None,
                    SiteHealth("backoff", 2, NOW + 60),
                    SiteHealth("probing", 2, NOW - 1),
                    SiteHealth(start_latency_s=5),
                ]
            )
        )
        out.append(
            SiteSpec(
                f"s{i}",
                draw(st.integers(1, 16)),
                draw(st.integers(1000, 64000)),
                gpus=draw(st.integers(0, 2)),
                max_pilots=max_pilots,
                max_queued=draw(st.integers(0, max_pilots)),
                max_submit_per_cycle=draw(st.integers(0, 6)),
                enabled=draw(st.booleans()),
                healthy=draw(st.integers(0, 5)) > 0,
                rank=draw(st.integers(0, 2)),
                cost_per_core_hour=draw(st.sampled_from([0.0, 0.01])),
                floor=floor,
                ceiling=ceiling,
                health=health,
                offline_requests=draw(st.sampled_from([0, 0, 5])),
            )
        )
    return out


@st.composite
def pilots_st(draw: st.DrawFn, sites: list[SiteSpec]) -> list[PilotView]:
    out = []
    for j in range(draw(st.integers(0, 12))):
        s = draw(st.sampled_from(sites))
        busy = draw(st.sampled_from([None, True, False]))
        free = draw(st.none() | st.integers(0, s.cpus))
        out.append(
            PilotView(
                f"p{j}",
                s.name,
                draw(st.sampled_from(STATES)),
                NOW - draw(st.integers(0, 5000)),
                busy,
                draw(st.booleans()),
                free,
                None if free is None else s.memory_mb // 2,
                retire_at=draw(st.none() | st.floats(NOW, NOW + 20000)),
            )
        )
    return out


@st.composite
def inputs(draw: st.DrawFn) -> tuple[list[JobGroup], list[SiteSpec], list[PilotView]]:
    sites = draw(sites_st())
    return draw(groups_st), sites, draw(pilots_st(sites))


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(inputs())
def test_never_exceeds_a_limit(data: tuple[list[JobGroup], list[SiteSpec], list[PilotView]]) -> None:
    groups, sites, pilots = data
    p = plan(groups, sites, pilots, NOW)
    for s in sites:
        sp = p.site(s.name)
        mine = [x for x in pilots if x.site == s.name]
        queued = sum(1 for x in mine if x.state in QUEUED_STATES)
        assert sp.submit >= 0
        assert sp.submit <= s.max_submit_per_cycle
        assert sp.submit == 0 or len(mine) + sp.submit <= s.max_pilots
        assert sp.submit == 0 or queued + sp.submit <= s.max_queued
        if s.ceiling is not None:
            assert sp.submit == 0 or len(mine) + sp.submit <= s.ceiling
        if not s.enabled or not s.healthy or (s.health and s.health.state == "backoff"):
            assert sp.submit == 0
        if s.health and s.health.state == "probing":
            assert sp.submit <= max(0, 1 - queued)
        if not s.healthy:
            assert sp.cancel == ()
        ids = [c.pilot_id for c in sp.cancel]
        assert len(ids) == len(set(ids)) and set(ids) <= {x.pilot_id for x in mine}
        assert all(x.busy is not True for x in mine if x.pilot_id in ids)


@FAST
@given(inputs())
def test_never_provisions_for_an_unmatched_group(data: tuple[list[JobGroup], list[SiteSpec], list[PilotView]]) -> None:
    groups, sites, pilots = data
    p = plan(groups, sites, pilots, NOW)
    for d in p.groups:
        if not d.matched:
            assert d.placements == () and d.pilots == 0 and d.site is None
        for pl in d.placements:
            assert pl.site in d.matched
        if d.matched:  # every matched job is placed or held back by a named limit
            assert sum(pl.jobs for pl in d.placements) + d.held_back == d.idle_jobs
    for s in sites:
        if s.floor == 0 and s.offline_requests == 0 and not any(s.name in d.matched for d in p.groups):
            assert p.site(s.name).submit == 0


@FAST
@given(inputs(), st.randoms(use_true_random=False))
def test_deterministic(data: tuple[list[JobGroup], list[SiteSpec], list[PilotView]], rnd: random.Random) -> None:
    groups, sites, pilots = data
    first = plan(groups, sites, pilots, NOW)
    assert plan(groups, sites, pilots, NOW) == first
    shuffled_g, shuffled_p = list(groups), list(pilots)
    rnd.shuffle(shuffled_g)
    rnd.shuffle(shuffled_p)
    cache = MatchCache()
    plan(shuffled_g, sites, shuffled_p, NOW, cache=cache)
    assert plan(shuffled_g, sites, shuffled_p, NOW, cache=cache) == first
