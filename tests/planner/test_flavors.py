"""Cloud sites choosing among instance types: the pure choice, and plans in the types' shapes."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from campus_factory.domain import InstanceShape, JobGroup
from campus_factory.planner import PilotView, SiteSpec, explain_plan, plan
from campus_factory.planner.flavors import choose_type, largest, no_type_fits
from campus_factory.planner.packing import per_bin

NOW = 1_000_000.0

M5L = InstanceShape("m5.large", 2, 8192, 0, 0, 0.096)
M5XL = InstanceShape("m5.xlarge", 4, 16384, 0, 0, 0.192)
R5L = InstanceShape("r5.large", 2, 16384, 0, 0, 0.126)
C5_4XL = InstanceShape("c5.4xlarge", 16, 32768, 0, 0, 0.68)
TYPES = (M5XL, R5L, M5L, C5_4XL)


def site(types: tuple[InstanceShape, ...] = TYPES, **kw: Any) -> SiteSpec:
    cpus, mem, disk, gpus = largest(types)
    base: dict[str, Any] = {
        "disk_mb": disk,
        "gpus": gpus,
        "max_pilots": 100,
        "max_queued": 100,
        "max_submit_per_cycle": 100,
        "sizing": "fit",
        "instance_types": types,
    }
    base.update(kw)
    return SiteSpec("cloud", cpus, mem, **base)


def G(gid: str, n: int, **kw: Any) -> JobGroup:
    base: dict[str, Any] = {"cpus": 1, "memory_mb": 2000, "disk_mb": 0}
    base.update(kw)
    return JobGroup(gid, n, **base)


# -- the pure choice -----------------------------------------------------------------------------
def test_the_cheapest_type_that_fits_one_job() -> None:
    assert choose_type(TYPES, (1, 2000, 0, 0)) is M5L
    assert choose_type(TYPES, (1, 12000, 0, 0)) is R5L  # m5.large lacks memory, r5 is cheaper than m5.xlarge
    assert choose_type(TYPES, (3, 2000, 0, 0)) is M5XL
    assert choose_type(TYPES, (8, 2000, 0, 0)) is C5_4XL
    assert choose_type(TYPES, (32, 2000, 0, 0)) is None
    assert choose_type((), (1, 1, 0, 0)) is None


def test_ties_go_to_the_smallest_type() -> None:
    # linear prices: 4 jobs cost the same in 2 x m5.large or 1 x m5.xlarge: the smaller one wins
    assert choose_type((M5XL, M5L), (1, 2000, 0, 0), 4) is M5L
    free_small = InstanceShape("small", 2, 4096, 0, 0, 0.0)
    free_big = InstanceShape("big", 8, 4096, 0, 0, 0.0)
    assert choose_type((free_big, free_small), (1, 100, 0, 0), 50) is free_small


def test_a_bigger_type_wins_when_it_is_cheaper_for_the_group() -> None:
    cheap_big = InstanceShape("big", 8, 32768, 0, 0, 0.2)  # 4x the cores of m5.large for 2x the price
    assert choose_type((M5L, cheap_big), (1, 2000, 0, 0), 1) is M5L
    assert choose_type((M5L, cheap_big), (1, 2000, 0, 0), 8) is cheap_big


def test_no_type_fits_says_what_each_lacks() -> None:
    why = no_type_fits(TYPES, (8, 40000, 0, 0))
    assert why.startswith("no instance type fits a job of 8 core(s)/40000 MB")
    assert "m5.large has 2 core(s)" in why and "c5.4xlarge has 32768 MB" in why
    assert "GPU" in no_type_fits((M5L,), (1, 100, 0, 1))


shapes = st.builds(
    InstanceShape,
    name=st.text("abcdefgh.0123456789", min_size=1, max_size=8),
    cpus=st.integers(1, 128),
    memory_mb=st.integers(1, 1 << 20),
    disk_mb=st.integers(0, 1 << 20),
    gpus=st.integers(0, 8),
    cost_per_hour=st.floats(0, 100, allow_nan=False, allow_infinity=False),
)
jobs = st.tuples(st.integers(1, 64), st.integers(0, 1 << 19), st.integers(0, 1 << 19), st.integers(0, 4))


@settings(max_examples=400, deadline=None)
@given(st.lists(shapes, max_size=8), jobs, st.integers(1, 500))
def test_the_chosen_type_fits_and_costs_least(types: list[InstanceShape], job: Any, count: int) -> None:
    chosen = choose_type(types, job, count)
    fitting = [t for t in types if per_bin(t.resources, job) >= 1]
    if not fitting:
        assert chosen is None
        assert no_type_fits(types, job).startswith("no instance type")
        return
    assert chosen is not None and per_bin(chosen.resources, job) >= 1

    def total(t: InstanceShape) -> float:
        return math.ceil(count / per_bin(t.resources, job)) * t.cost_per_hour

    assert total(chosen) <= min(total(t) for t in fitting)
    cheapest = [t for t in fitting if total(t) == total(chosen)]
    assert min(t.resources for t in cheapest) == chosen.resources  # ties: the smallest
    if count == 1:
        assert chosen.cost_per_hour == min(t.cost_per_hour for t in fitting)


# -- plans in the types' shapes ------------------------------------------------------------------
def test_new_pilots_are_the_cheapest_type_and_hold_several_jobs() -> None:
    p = plan([G("small", 5), G("mem", 1, memory_mb=12000)], [site()], [], NOW)
    sp = p.site("cloud")
    # the 12 GB job first (largest first): one r5.large, whose second core takes a 1-core job;
    # the four other 1-core jobs: two m5.large (2 cores each)
    assert sp.submit == 3
    assert sp.sizes == ((2, 16384, 0, 0, 1), (2, 8192, 0, 0, 2)) and sp.instance_types == ("r5.large", "m5.large")
    assert sp.instance_type_of((2, 8192, 0, 0)) == "m5.large" and sp.instance_type_of((9, 9, 9, 9)) == ""
    assert p.group("small").reason.endswith("(0 into existing, 2 new pilot(s) of type m5.large)")
    text = explain_plan(p)
    assert "instance types, cheapest that fits their jobs: 1 x r5.large (2 core(s)/16384 MB), 2 x m5.large" in text
    assert "of type m5.large" in text


def test_a_job_no_type_fits_is_held_back_with_the_reason() -> None:
    types = (*TYPES, InstanceShape("r5.2xlarge", 8, 65536, 0, 0, 0.504))
    p = plan([G("odd", 2, cpus=16, memory_mb=20000)], [site(types)], [], NOW)
    assert p.group("odd").pilots == 2 and p.group("odd").placements[0].instance_type == "c5.4xlarge"
    # 16 cores and 40 GB: within the largest type per resource (the site's slot), yet no single type
    p = plan([G("wide", 1, cpus=16, memory_mb=40000)], [site(types)], [], NOW)
    wide = p.group("wide")
    assert wide.held_back == 1 and wide.pilots == 0
    assert "cloud: no instance type fits a job of 16 core(s)/40000 MB (m5.xlarge has 4 core(s)" in wide.reason


def test_pilots_there_take_any_job_that_fits_them() -> None:
    # a running m5.xlarge with 3 free cores takes three 1-core jobs: no "fill the pilot" START clause
    pilot = PilotView("p1", "cloud", "joined", NOW - 60, False, True, 3, 12000, None, 0, None, 4, 16384, 0, 0)
    p = plan([G("small", 4)], [site()], [pilot], NOW)
    placement = p.group("small").placements[0]
    assert (placement.into_existing, placement.new_pilots, placement.instance_type) == (3, 1, "m5.large")


def test_floor_pilots_are_the_cheapest_type_and_one_type_is_a_fixed_site() -> None:
    p = plan([], [site(floor=2)], [], NOW)
    assert p.site("cloud").sizes == ((2, 8192, 0, 0, 2),) and p.site("cloud").instance_types == ("m5.large",)
    one = site((M5XL,), sizing="fixed")
    p = plan([G("small", 6)], [one], [], NOW)
    sp = p.site("cloud")
    assert sp.submit == 2 and sp.sizes == ((4, 16384, 0, 0, 2),) and sp.instance_types == ("m5.xlarge",)


def test_limits_count_cores_in_slots_of_the_largest_type() -> None:
    # max_submit_per_cycle = 1 slot of the largest type (16 cores): eight m5.large at most
    p = plan([G("small", 40)], [site(max_submit_per_cycle=1)], [], NOW)
    sp = p.site("cloud")
    assert sp.submit == 8 and sp.instance_types == ("m5.large",) and p.group("small").held_back == 24


# -- from config ---------------------------------------------------------------------------------
def test_a_site_whose_types_are_not_read_gets_no_action() -> None:
    from campus_factory.config import parse_config
    from campus_factory.planner.inputs import site_spec

    cloud = {"image": "ami-1", "instance_types": [{"name": "m5.large"}, {"name": "m5.xlarge"}]}
    cfg = parse_config({"sites": [{"name": "read", "provider": "ec2", "cloud": cloud}]})
    spec = site_spec(cfg.sites[0])
    assert not spec.healthy and spec.health_note == "the shapes of its cloud.instance_types are not known yet"
    assert plan([G("g", 3)], [spec], [], NOW).site("read").submit == 0
    assert site_spec(cfg.sites[0], instance_types=(M5L, M5XL)).healthy


def test_a_type_with_no_known_disk_takes_jobs_that_request_disk() -> None:
    ebs = InstanceShape("m5.large", 2, 8192, 0, 0, 0.096)  # EBS only, slot.disk_mb = 0: not limited
    small = InstanceShape("tiny", 2, 8192, 100, 0, 0.01)
    assert choose_type((ebs, small), (1, 1000, 5000, 0)) is ebs
    assert "tiny has 100 MB disk" in no_type_fits((small,), (1, 1000, 5000, 0))
    p = plan([G("g", 2, disk_mb=5000)], [site((ebs,), sizing="fixed")], [], NOW)
    assert p.site("cloud").sizes == ((2, 8192, 0, 0, 1),) and p.site("cloud").instance_types == ("m5.large",)


def test_explain_group_names_the_chosen_type() -> None:
    from campus_factory.planner import explain_group

    g = G("mem", 2, memory_mb=12000)
    p = plan([g], [site()], [], NOW)
    text = explain_group(p, g, [site()])
    assert "planned: 2 job(s), 0 into existing pilots, 2 new pilot(s) of type r5.large" in text
