"""The campus match behind flocked demand, on plain data: which idle job groups no slot of the
campus pool could run (those get pilots), and which the campus pool will run itself."""

from __future__ import annotations

import classad2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.demand.campus import (
    CampusSlot,
    campus_slot,
    group_with,
    shape_signature,
    slot_job_refs,
    split_for_flocking,
)
from campus_factory.demand.flocking import CombinedDemand, FlockedDemand
from campus_factory.domain import JobGroup
from campus_factory.errors import ConfigError

#: condor_submit's default Requirements for a vanilla job that transfers files
SUBMIT_REQ = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && '
    "(TARGET.Memory >= RequestMemory) && (TARGET.HasFileTransfer)"
)


def slot_attrs(name: str = "slot1@campus", *, cpus: int = 2, memory: int = 256, used: bool = False, **extra: str):
    """A partitionable slot ad as the campus collector returns it (ClassAd text per attribute)."""
    attrs = {
        "MyType": '"Machine"',
        "Name": f'"{name}"',
        "Machine": '"campus"',
        "PartitionableSlot": "true",
        "Cpus": "0" if used else str(cpus),
        "Memory": "0" if used else str(memory),
        "Disk": "1000000",
        "GPUs": "0",
        "TotalSlotCpus": str(cpus),
        "TotalSlotMemory": str(memory),
        "TotalSlotDisk": "1000000",
        "TotalSlotGPUs": "0",
        "OpSys": '"LINUX"',
        "Arch": '"X86_64"',
        "HasFileTransfer": "true",
        "START": "true",
        "WithinResourceLimits": "(MY.Cpus >= TARGET.RequestCpus) && (MY.Memory >= TARGET.RequestMemory)",
        "Requirements": "START && (WithinResourceLimits)",
        "State": '"Claimed"' if used else '"Unclaimed"',
        "LastHeardFrom": "1767225600",
    }
    attrs.update(extra)
    return attrs


def slot(**kw) -> CampusSlot:
    s = campus_slot(slot_attrs(**kw))
    assert s is not None
    return s


def group(gid: str, *, memory: int = 64, cpus: int = 1, count: int = 1, owner: str = "alice", **kw) -> JobGroup:
    jobs = tuple(f"{gid[1:] or 1}.{i}" for i in range(count))
    kw.setdefault("requirements", SUBMIT_REQ)
    return JobGroup(gid, count, cpus, memory, 10, 0, owner, schedd="campus-schedd", jobs=jobs, **kw)


# -- the campus slots, as if empty -----------------------------------------------------------------
def test_a_partitionable_slot_counts_with_its_total_resources_even_when_full() -> None:
    s = slot(used=True, cpus=2, memory=256)
    assert (s.cpus, s.memory_mb) == (2, 256)
    split = split_for_flocking([group("g1", memory=200)], [s])
    assert split.flocking == () and [g.group_id for g, _ in split.campus] == ["g1"]
    assert split.campus[0][1] == "slot1@campus"


def test_dynamic_slots_and_offline_ads_are_not_campus_capacity() -> None:
    assert campus_slot(slot_attrs(DynamicSlot="true", PartitionableSlot="false")) is None
    assert campus_slot(slot_attrs(Offline="true")) is None
    assert campus_slot(slot_attrs(START="(((")) is None  # an ad that does not parse


def test_slots_of_one_shape_share_a_signature_names_and_times_aside() -> None:
    a = slot_attrs("slot1@a", LastHeardFrom="1")
    b = slot_attrs("slot1@b", LastHeardFrom="2")
    c = slot_attrs("slot1@c", memory=512)
    assert shape_signature(a) == shape_signature(b) != shape_signature(c)


# -- which groups flock -------------------------------------------------------------------------
def test_jobs_too_big_for_every_campus_slot_flock_and_the_others_stay() -> None:
    small, big, cores = group("g1", memory=64), group("g2", memory=1024), group("g3", cpus=4)
    split = split_for_flocking([small, big, cores], [slot(memory=256), slot(name="slot1@b", memory=512)])
    assert [g.group_id for g in split.flocking] == ["g2", "g3"]
    assert [g.group_id for g, _ in split.campus] == ["g1"]
    assert split.left_to_campus == 1


def test_a_job_requirement_no_campus_slot_meets_flocks() -> None:
    g = group("g1", requirements=f"{SUBMIT_REQ} && (TARGET.HasCVMFS =?= true)")
    assert split_for_flocking([g], [slot()]).flocking == (g,)
    with_cvmfs = slot(HasCVMFS="true")
    assert split_for_flocking([g], [with_cvmfs]).flocking == ()


def test_a_campus_start_policy_that_refuses_the_job_makes_it_flock() -> None:
    s = slot(START='TARGET.Owner != "bob"')
    split = split_for_flocking([group("g1", owner="alice"), group("g2", owner="bob")], [s])
    assert [g.owner for g in split.flocking] == ["bob"]


def test_no_campus_slots_at_all_means_everything_flocks() -> None:
    gs = [group("g1"), group("g2", memory=4096)]
    assert split_for_flocking(gs, []).flocking == tuple(gs)


def test_a_hostile_requirements_expression_costs_only_its_group() -> None:
    bad = group("g1", requirements="((((")
    huge = group("g2", requirements=" && ".join(["(TARGET.Memory > 1)"] * 3000))
    ok = group("g3")
    split = split_for_flocking([bad, huge, ok], [slot()])
    assert bad in split.flocking  # the campus cannot match it either: the planner decides
    assert [g.group_id for g, _ in split.campus] in (["g2", "g3"], ["g3"])
    assert any("g1" in e for e in split.errors)


def test_campus_runnable_jobs_that_waited_too_long_count_when_asked() -> None:
    g = group("g7", count=3)
    since = {"7.0": 100.0, "7.1": 900.0, "7.2": 950.0}
    never = split_for_flocking([g], [slot()], idle_since=since, now=1000.0)
    assert never.flocking == () and never.left_to_campus == 3
    late = split_for_flocking([g], [slot()], idle_since=since, wait_for_campus=600, now=1000.0)
    assert [(x.count, x.jobs) for x in late.flocking] == [(1, ("7.0",))]
    assert [(x.count, x.jobs) for x, _ in late.campus] == [(2, ("7.1", "7.2"))]


def test_results_are_cached_per_group_and_slot_shapes() -> None:
    cache: dict[tuple[str, str], str | None] = {}
    gs = [group("g1"), group("g2", memory=4096)]
    first = split_for_flocking(gs, [slot()], cache=cache)
    assert sorted(v or "" for v in cache.values()) == ["", "slot1@campus"]
    again = split_for_flocking(gs, [slot()], cache=cache)
    assert again == first and len(cache) == 2
    split_for_flocking(gs, [slot(memory=8192)], cache=cache)  # another campus: evaluated anew
    assert len(cache) == 4


@settings(max_examples=60, deadline=None)
@given(
    jobs=st.lists(st.tuples(st.integers(1, 8), st.integers(1, 4096), st.integers(1, 5)), min_size=0, max_size=6),
    slots=st.lists(st.tuples(st.integers(1, 8), st.integers(1, 4096), st.booleans()), min_size=0, max_size=4),
)
def test_a_group_stays_exactly_when_some_slot_has_room_and_no_job_is_lost(jobs, slots) -> None:
    groups = [group(f"g{i}", cpus=c, memory=m, count=n) for i, (c, m, n) in enumerate(jobs)]
    campus = [slot(name=f"s{i}", cpus=c, memory=m, used=u) for i, (c, m, u) in enumerate(slots)]
    split = split_for_flocking(groups, campus)
    stays = {g.group_id for g, _ in split.campus}
    for g in groups:
        fits = any(g.cpus <= c and g.memory_mb <= m for c, m, _ in slots)
        assert (g.group_id in stays) is fits
    assert sum(g.count for g in split.flocking) + split.left_to_campus == sum(n for *_, n in jobs)


# -- what the slots look at in jobs ---------------------------------------------------------------
def test_job_attributes_the_campus_start_refers_to_are_fetched_and_kept() -> None:
    s = slot(START='TARGET.AcctGroup == "physics" && KeyboardIdle > 0 && TARGET.RequestCpus <= 2')
    # unscoped names the slot lacks are looked up in the job too; attributes a group models are not extras
    assert slot_job_refs([s]) == {"AcctGroup", "KeyboardIdle"}

    def ad(cluster: int, acct: str) -> classad2.ClassAd:
        return classad2.ClassAd(
            f'[ClusterId = {cluster}; ProcId = 0; Owner = "alice"; RequestCpus = 1; RequestMemory = 64; '
            f'RequestDisk = 1000; AcctGroup = "{acct}"; Requirements = {SUBMIT_REQ}]'
        )

    groups = group_with([ad(1, "physics"), ad(2, "chemistry"), ad(3, "physics")], "campus-schedd", ["AcctGroup"])
    assert sorted((g.attributes["AcctGroup"], g.count) for g in groups) == [('"chemistry"', 1), ('"physics"', 2)]
    split = split_for_flocking(groups, [slot(START='TARGET.AcctGroup == "physics"')])
    assert [g.attributes["AcctGroup"] for g in split.flocking] == ['"chemistry"']


# -- the demand sources together ---------------------------------------------------------------
class FakeCampus(FlockedDemand):
    """The campus pool's answers from memory (the real queries are tested against real pools)."""

    def __init__(self, config, slots, groups):
        super().__init__(config.pool, clock=lambda: 1000.0)
        self._slots, self._groups = slots, groups

    def campus_slots(self, src):
        return self._slots

    def idle_jobs(self, src, extra=()):
        return self._groups, {}


def flock_config(**src):
    entry = {"name": "campus", "collector": "127.0.0.1:9618", "schedds": ["campus-schedd"], **src}
    return parse_config({"pool": {"flock_from": [entry]}})


def test_combined_demand_is_own_demand_plus_what_no_campus_slot_runs() -> None:
    cfg = flock_config()
    own = JobGroup("own", 2, schedd="factory-schedd")
    leaked = JobGroup("leak", 5, schedd="campus-schedd")  # a campus schedd this collector lists too
    flocked = FakeCampus(cfg, [slot()], [group("g1"), group("g2", memory=2048)])
    demand = CombinedDemand(StaticDemand([own, leaked]), flocked)
    assert [g.group_id for g in demand.idle_groups()] == ["own", "g2"]
    assert flocked.sources[0].last.left_to_campus == 1


def test_flock_sources_are_validated_where_they_enter() -> None:
    src = flock_config(wait_for_campus="10m").pool.flock_from[0]
    assert (src.schedd_id, src.negotiator_id, src.wait_for_campus) == (
        "flock-campus@campus-factory",
        "negotiator@campus",
        600.0,
    )
    for bad in (
        {"schedds": []},
        {"schedds": ["a\nb"]},
        {"collector": "host:9618\n"},
        {"schedd_identity": "nobody"},
        {"negotiator_identity": "n@campus\n"},
        {"wait_for_campus": "inf"},
        {"wait_for_campus": "9999d"},
        {"extra": 1},
    ):
        with pytest.raises(ConfigError):
            flock_config(**bad)
    with pytest.raises(ConfigError, match="own name"):
        parse_config({"pool": {"flock_from": [flock_config().pool.flock_from[0].model_dump()] * 2}})
