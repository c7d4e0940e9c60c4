"""Pilots sized to demand (``[sites.slot] sizing = "fit"``): plain data in, a plan out."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from campus_factory.config import SiteConfig
from campus_factory.domain import JobGroup
from campus_factory.planner import PilotView, SitePlan, SiteSpec, plan
from campus_factory.planner.inputs import site_spec
from campus_factory.planner.packing import fitted

NOW = 1_000_000.0


def S(name: str = "hpc", **kw: Any) -> SiteSpec:
    base: dict[str, Any] = {
        "cpus": 16,
        "memory_mb": 64000,
        "disk_mb": 160000,
        "max_pilots": 100,
        "max_queued": 100,
        "max_submit_per_cycle": 100,
        "sizing": "fit",
    }
    base.update(kw)
    return SiteSpec(name, **base)


def G(gid: str, n: int, **kw: Any) -> JobGroup:
    base: dict[str, Any] = {"cpus": 1, "memory_mb": 2000, "disk_mb": 0}
    base.update(kw)
    return JobGroup(gid, n, **base)


def test_a_fit_site_asks_for_one_job_sized_pilot_per_job() -> None:
    p = plan([G("small", 5), G("big", 2, cpus=4, memory_mb=8000)], [S()], [], NOW)
    sp = p.site("hpc")
    assert sp.submit == 7
    # largest jobs are placed first; disk is the slot's share of the cores (no disk requested)
    assert sp.sizes == ((4, 8000, 40000, 0, 2), (1, 2000, 10000, 0, 5))
    assert p.group("small").jobs_per_pilot == 1 and p.group("big").pilots == 2
    assert any("pilots sized to their jobs: 2 x 4 core(s)/8000 MB, 5 x 1 core(s)/2000 MB" in r for r in sp.reasons)


def test_a_fixed_site_packs_jobs_into_whole_slots_and_gives_no_sizes() -> None:
    p = plan([G("small", 20)], [S(sizing="fixed")], [], NOW)
    sp = p.site("hpc")
    assert sp.submit == 2 and sp.sizes == ()
    assert sp.pilot_sizes((16, 64000, 160000, 0)) == ((16, 64000, 160000, 0, 2),)


def test_fitted_pilot_resources() -> None:
    slot = (16, 64000, 160000, 1)
    assert fitted(slot, (2, 0, 0, 0)) == (2, 8000, 20000, 0)  # memory and disk in proportion to cores
    assert fitted(slot, (2, 3000, 500, 1)) == (2, 3000, 500, 1)  # what the job requests
    assert fitted((16, 64000, -1, 0), (1, 2000, 0, 0)) == (1, 2000, -1, 0)  # unlimited disk stays so


def test_queued_and_running_fit_pilots_count_with_their_own_size() -> None:
    pilots = [
        PilotView("q1", "hpc", "queued", NOW - 10, cpus=1, memory_mb=2000, disk_mb=10000, gpus=0),
        PilotView(
            "r1", "hpc", "running", NOW - 10, busy=False, free_cpus=1, free_memory_mb=2000, cpus=1, memory_mb=2000
        ),
    ]
    p = plan([G("small", 5)], [S()], pilots, NOW)
    # each existing pilot takes one job, not a whole 16-core slot's worth
    assert p.site("hpc").submit == 3
    assert p.group("small").placements[0].into_existing == 2
    # at a fixed site, a queued pilot counts as a whole slot, whatever the ledger says it asked for
    fixed = plan([G("small", 5)], [S(sizing="fixed")], pilots[:1], NOW)
    assert fixed.site("hpc").submit == 0


def test_floor_pilots_of_a_fit_site_are_whole_slots() -> None:
    p = plan([G("small", 2)], [S(floor=4)], [], NOW)
    sp = p.site("hpc")
    assert sp.submit == 4
    assert sp.sizes == ((1, 2000, 10000, 0, 2), (16, 64000, 160000, 0, 2))


def test_pilot_sizes_follow_a_lowered_submit() -> None:
    sp = SitePlan("hpc", 3, (), 3, 0, None, (), sizes=((4, 8000, 0, 0, 2), (1, 2000, 0, 0, 5)))
    assert sp.pilot_sizes((16, 64000, 0, 0)) == ((4, 8000, 0, 0, 2), (1, 2000, 0, 0, 1))
    more = SitePlan("hpc", 4, (), 4, 0, None, (), sizes=((1, 2000, 0, 0, 2),))
    assert more.pilot_sizes((16, 64000, 0, 0)) == ((1, 2000, 0, 0, 2), (16, 64000, 0, 0, 2))


def test_a_fit_site_does_not_learn_its_size_from_its_small_pilots() -> None:
    slot = {"cpus": 16, "memory_mb": 64000, "sizing": "fit", "attributes": {"HasCVMFS": True}}
    site = SiteConfig.model_validate({"name": "hpc", "provider": "fake", "slot": slot})
    learned = {"Cpus": "1", "Memory": "2000", "HasCVMFS": "false"}
    spec = site_spec(site, learned)
    assert (spec.cpus, spec.memory_mb, spec.sizing) == (16, 64000, "fit")
    assert spec.slot_ad is not None and spec.slot_ad.get("Cpus") == "16"
    assert spec.slot_ad.get("HasCVMFS") == "false"  # other attributes are still learned
    fixed = SiteConfig.model_validate({"name": "hpc", "provider": "fake", "slot": {**slot, "sizing": "fixed"}})
    assert site_spec(fixed, learned).cpus == 1


def test_sizing_is_validated() -> None:
    with pytest.raises(ValidationError, match="sizing"):
        SiteConfig.model_validate({"name": "hpc", "provider": "fake", "slot": {"sizing": "elastic"}})


def _running(pid: str, cpus: int, free: int, since: float = NOW - 900) -> PilotView:
    mem = 4000 * cpus
    busy, free_mem = free < cpus, mem * free // cpus
    return PilotView(
        pid, "hpc", "running", since, busy, free_cpus=free, free_memory_mb=free_mem, cpus=cpus, memory_mb=mem
    )


def test_a_fit_pilot_takes_no_job_smaller_than_itself() -> None:
    # an idle 4-core pilot whose job ended: its START wants jobs that fill its 4 cores
    p = plan([G("small", 3)], [S(idle_timeout_s=600.0)], [_running("r4", 4, 4)], NOW)
    sp = p.site("hpc")
    assert p.group("small").placements[0].into_existing == 0
    assert sp.submit == 3 and sp.sizes == ((1, 2000, 10000, 0, 3),)
    assert [c.pilot_id for c in sp.cancel] == ["r4"]  # idle past its timeout and of no use
    # a job of its own size takes it
    q = plan([G("big", 1, cpus=4, memory_mb=8000), G("small", 3)], [S()], [_running("r4", 4, 4)], NOW)
    assert q.group("big").placements[0].into_existing == 1 and q.site("hpc").submit == 3
    assert q.site("hpc").cancel == ()


def test_a_queued_fit_pilot_counts_only_for_jobs_of_its_size() -> None:
    queued = PilotView("q4", "hpc", "queued", NOW - 10, cpus=4, memory_mb=16000, disk_mb=40000, gpus=0)
    p = plan([G("small", 2)], [S()], [queued], NOW)
    sp = p.site("hpc")
    assert sp.submit == 2 and [c.pilot_id for c in sp.cancel] == ["q4"]
    both = plan([G("mid", 1, cpus=4, memory_mb=8000), G("small", 2)], [S()], [queued], NOW)
    assert both.group("mid").placements[0].into_existing == 1 and both.site("hpc").cancel == ()


def test_free_cores_of_a_partly_used_fit_pilot_are_not_capacity() -> None:
    # a whole-slot pilot (a floor pilot) running a 16-core job cannot take a smaller job
    # with the cores it has left: nothing smaller than 16 cores starts on it
    p = plan([G("small", 2)], [S()], [_running("r16", 16, 15)], NOW)
    assert p.group("small").placements[0].into_existing == 0 and p.site("hpc").submit == 2
    # at a fixed site the same free cores take the jobs
    f = plan([G("small", 2)], [S(sizing="fixed")], [_running("r16", 16, 15)], NOW)
    assert f.group("small").placements[0].into_existing == 2 and f.site("hpc").submit == 0


def test_the_slot_ad_of_a_fit_site_has_no_fill_clause() -> None:
    slot = {"cpus": 16, "memory_mb": 64000, "sizing": "fit"}
    spec = site_spec(SiteConfig.model_validate({"name": "hpc", "provider": "fake", "slot": slot}), None)
    assert spec.slot_ad is not None
    assert "TotalSlotCpus" not in (spec.slot_ad.get("START") or "")
    # it stands for the largest pilot: every job size up to the slot's matches the site
    p = plan([G("small", 1), G("big", 1, cpus=16, memory_mb=8000)], [spec], [], NOW)
    assert p.group("small").matched == ("hpc",) and p.group("big").matched == ("hpc",)


# -- max_cores: a limit in cores, whatever the pilots' sizes ------------------------------------
def test_max_cores_holds_fit_pilots_of_mixed_sizes_to_the_site_cores() -> None:
    running = [PilotView(f"r{i}", "hpc", "running", NOW - 60, True, cpus=4) for i in range(2)]  # 8 cores busy
    p = plan([G("big", 3, cpus=4, memory_mb=8000), G("small", 10)], [S(max_cores=20)], running, NOW)
    sp = p.site("hpc")
    # 12 cores left: the three 4-core jobs take them all (largest first); no room for 1-core pilots
    assert sp.sizes == ((4, 8000, 40000, 0, 3),) and sp.submit == 3
    assert sum(c * n for c, *_, n in sp.sizes) <= 20 - 8
    assert p.group("small").held_back == 10 and "hpc: max_cores" in p.group("small").bound_by


def test_max_cores_in_whole_slots_at_a_fixed_site_and_for_floor_pilots() -> None:
    p = plan([G("small", 100)], [S(sizing="fixed", max_cores=40)], [], NOW)
    sp = p.site("hpc")
    assert sp.submit == 2 and sp.bound_by == "max_cores"  # 40 cores: two 16-core pilots
    floor = plan([], [S(sizing="fixed", max_cores=40, floor=5)], [], NOW).site("hpc")
    assert floor.submit == 2  # the floor asks for 5, the cores allow 2


def test_max_cores_below_one_fixed_pilot_is_refused() -> None:
    with pytest.raises(ValidationError, match="no pilot could start"):
        SiteConfig.model_validate(
            {"name": "hpc", "provider": "slurm", "slot": {"cpus": 16, "sizing": "fixed"}, "limits": {"max_cores": 8}}
        )
    fit = SiteConfig.model_validate(
        {"name": "hpc", "provider": "slurm", "slot": {"cpus": 16, "sizing": "fit"}, "limits": {"max_cores": 8}}
    )
    assert site_spec(fit).max_cores == 8


# -- limits in cores: at a fit site the pilot limits count whole slots' worth of cores ---------
def test_pilot_limits_at_a_fit_site_count_cores_in_whole_slots() -> None:
    # two 16-core slots' worth: 32 one-core pilots, not 2 (no multiplying the limits by hand)
    p = plan([G("small", 100)], [S(max_pilots=2, max_queued=2, max_submit_per_cycle=2)], [], NOW)
    sp = p.site("hpc")
    assert sp.submit == 32 and sp.sizes == ((1, 2000, 10000, 0, 32),)
    assert p.group("small").held_back == 68
    # pilots already there count their cores, once: 20 queued cores leave 12 of max_queued's 32
    queued = [PilotView(f"q{i}", "hpc", "queued", NOW - 10, cpus=4) for i in range(5)]
    q = plan([G("small", 100)], [S(max_pilots=10, max_queued=2, max_submit_per_cycle=10)], queued, NOW).site("hpc")
    assert q.submit == 12 and q.bound_by == "max_queued"


def test_the_ceiling_of_a_fit_site_cancels_by_cores() -> None:
    # ceiling 1 slot = 16 cores; 5 queued 4-core pilots, all needed, hold 20: one is cancelled, not four
    queued = [PilotView(f"r{i}", "hpc", "queued", NOW - 600, cpus=4) for i in range(5)]
    sp = plan([G("quad", 20, cpus=4, memory_mb=8000)], [S(ceiling=1)], queued, NOW).site("hpc")
    assert [c.pilot_id for c in sp.cancel] == ["r0"]
    assert "ceiling of 1 slot(s) of 16 core(s)" in sp.cancel[0].reason


def test_idle_timeout_runs_from_the_last_jobs_end_not_from_joined() -> None:
    # joined an hour ago, its last job ended 30 s ago: not idle past a 60 s timeout
    recent = PilotView("p1", "hpc", "joined", NOW - 3600, False, cpus=1, idle_since=NOW - 30)
    never = PilotView("p2", "hpc", "joined", NOW - 3600, False, cpus=1)  # no job seen since it joined
    old = PilotView("p3", "hpc", "joined", NOW - 3600, False, cpus=1, idle_since=NOW - 90)
    sp = plan([], [S(sizing="fixed", idle_timeout_s=60)], [recent, never, old], NOW).site("hpc")
    assert sorted(c.pilot_id for c in sp.cancel) == ["p2", "p3"]
    assert any(c.reason == "idle for 90 s >= idle_timeout" for c in sp.cancel)


def test_a_fit_pilot_no_job_needs_leaves_at_once_but_one_a_job_needs_stays() -> None:
    done = PilotView("p1", "hpc", "joined", NOW - 3600, False, cpus=1, idle_since=NOW - 30)
    needed = PilotView("p2", "hpc", "joined", NOW - 3600, False, cpus=4, idle_since=NOW - 30)
    sp = plan([G("quad", 1, cpus=4, memory_mb=8000)], [S(idle_timeout_s=600)], [done, needed], NOW).site("hpc")
    (cancel,) = sp.cancel
    assert cancel.pilot_id == "p1" and "no idle job needs it" in cancel.reason and cancel.graceful


def test_a_pilot_that_just_joined_is_not_cancelled_before_its_first_job_can_show() -> None:
    # joined 3 s ago, never seen busy, no idle job left: its job may have started before its
    # slot's ad says so (the real-pool report test saw both pilots cancelled with their jobs)
    from campus_factory.planner.warm import JOIN_SETTLE_S

    fresh = PilotView("p1", "hpc", "joined", NOW - 3, False, cpus=1)
    assert plan([], [S(idle_timeout_s=600)], [fresh], NOW).site("hpc").cancel == ()
    settled = PilotView("p1", "hpc", "joined", NOW - JOIN_SETTLE_S, False, cpus=1)
    (cancel,) = plan([], [S(idle_timeout_s=600)], [settled], NOW).site("hpc").cancel
    assert cancel.pilot_id == "p1" and cancel.graceful
