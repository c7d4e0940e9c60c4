"""The pool's view without a pool: pilot slots from startd ads, learned ads, offline ads."""

from __future__ import annotations

import pytest

from campus_factory.classads import ad_from_attributes, parse_ad
from campus_factory.errors import PoolError
from campus_factory.planner.slotad import build_slot_ad
from campus_factory.pool import FakePool, LearnedAds, by_pilot, latest_by_site, pilot_ad, slot_from_ad
from campus_factory.pool.htcondor import pilot_constraint
from campus_factory.pool.offline import (
    condor_advertise_argv,
    invalidate_attributes,
    offline_ad_attributes,
    offline_ad_name,
    offline_requests,
    old_format,
)

NOW = 1_000_000.0


def test_slot_from_a_plain_ad() -> None:
    s = slot_from_ad(
        pilot_ad(
            "alpha",
            "alpha-1",
            cpus=8,
            memory_mb=16000,
            used_cpus=3,
            used_memory_mb=6000,
            end=NOW + 3600,
            seen_at=NOW - 5,
        ),
        NOW,
    )
    assert s is not None
    assert (s.site, s.pilot_id, s.total_cpus, s.free_cpus, s.free_memory_mb, s.busy) == (
        "alpha",
        "alpha-1",
        8,
        5,
        10000,
        True,
    )
    assert s.retire_at == NOW + 3600 and s.seen_at == NOW - 5
    learned = s.learned()
    assert learned["Cpus"] == "8" and learned["Memory"] == "16000" and learned["OpSys"] == '"LINUX"'


def test_slot_from_a_classad2_ad() -> None:
    ad = parse_ad(
        '[CampusFactorySite = "beta"; CampusFactoryPilotId = "beta-7"; PartitionableSlot = true; Cpus = 4; '
        "Memory = 8000; Disk = 10240000; GPUs = 0; TotalSlotCpus = 4; TotalSlotMemory = 8000; NumDynamicSlots = 0; "
        "CampusFactoryPilotEnd = 2000000; CampusFactoryRetireMargin = 300; HasCVMFS = true; LastHeardFrom = 999]"
    )
    s = slot_from_ad(ad, NOW)
    assert s is not None
    assert (s.free_cpus, s.free_disk_mb, s.busy, s.retire_at, s.seen_at) == (4, 10000, False, 2000000 - 300, 999)
    assert s.attributes["HasCVMFS"] == "true"


def test_foreign_ads_are_ignored_and_latest_wins() -> None:
    assert slot_from_ad({"Name": "slot1@other", "Cpus": 4}, NOW) is None
    pool = FakePool(
        [
            pilot_ad("a", "a-1", seen_at=10, memory_mb=7000),
            pilot_ad("a", "a-2", seen_at=20, memory_mb=7500),
            pilot_ad("b", "b-1", seen_at=5),
            {"Name": "not ours"},
        ]
    )
    slots = pool.pilot_slots()
    assert sorted(by_pilot(slots)) == ["a-1", "a-2", "b-1"]
    assert {k: v.pilot_id for k, v in latest_by_site(slots).items()} == {"a": "a-2", "b": "b-1"}
    pool.fail = "collector down"
    with pytest.raises(PoolError):
        pool.pilot_slots()


def test_learned_ads_survive_pilots_and_round_trip() -> None:
    store = LearnedAds()
    store.update(FakePool([pilot_ad("a", "a-1", seen_at=10, memory_mb=7000)]).pilot_slots())
    store.update([])  # the pilot left: the learned ad stays
    assert store.get("a") is not None and store.get("a")["Memory"] == "7000"  # type: ignore[index]
    store.update(FakePool([pilot_ad("a", "a-0", seen_at=5, memory_mb=1)]).pilot_slots())  # older: ignored
    again = LearnedAds.from_json(store.to_json())
    assert again.get("a") == store.get("a") and again.seen_at("a") == 10


def test_offline_ad_is_a_valid_matchable_startd_ad() -> None:
    slot = build_slot_ad("alpha", 8, 16000, 1000, 0, 3600)
    attrs = dict(offline_ad_attributes(slot, factory="campus", site="alpha", lifetime_s=1800))
    assert attrs["Offline"] == "true" and attrs["ClassAdLifetime"] == "1800"
    assert attrs["Name"] == '"offline-campus-alpha"' and attrs["Machine"] == attrs["Name"]
    assert "CondorVersion" in attrs and attrs["Requirements"] == "START"
    ad = ad_from_attributes(attrs)
    job = parse_ad(
        "[RequestMemory = 1000; RequestDisk = 1000; RequestCpus = 1; Requirements = (TARGET.Memory >= RequestMemory) "
        '&& (versionGE(split(TARGET.CondorVersion)[1], "24.0.0") || TARGET.Disk >= RequestDisk)]'
    )
    assert job.symmetricMatch(ad)
    text = old_format(offline_ad_attributes(slot, factory="campus", site="alpha"))
    assert "Offline = true\n" in text and text.endswith("\n")
    assert offline_ad_name("f", "s") != offline_ad_name("f", "t")


def test_invalidate_ad_and_advertise_argv() -> None:
    attrs = dict(invalidate_attributes("campus", "alpha"))
    assert attrs["MyType"] == '"Query"' and attrs["Requirements"] == 'Name == "offline-campus-alpha"'
    assert condor_advertise_argv("INVALIDATE_STARTD_ADS", "/tmp/ad") == [
        "condor_advertise",
        "INVALIDATE_STARTD_ADS",
        "/tmp/ad",
    ]
    with pytest.raises(ValueError):
        condor_advertise_argv("UPDATE_SCHEDD_AD", "/tmp/ad")


def test_offline_requests_read_the_negotiators_merge() -> None:
    ads = [
        {
            "Offline": True,
            "CampusFactoryName": "campus",
            "CampusFactorySite": "a",
            "MachineLastMatchTime": NOW - 10,
            "OfflineMatches": [{"Scheduler": "s", "AutoclusterID": 13, "RequestCount": 4}, {"AutoclusterID": 2}],
        },
        {"Offline": True, "CampusFactoryName": "campus", "CampusFactorySite": "b", "MachineLastMatchTime": NOW - 900},
        {"Offline": True, "CampusFactoryName": "campus", "CampusFactorySite": "c"},
        {"Offline": True, "CampusFactoryName": "other", "CampusFactorySite": "a", "MachineLastMatchTime": NOW},
        {"Offline": True, "CampusFactoryName": "campus", "CampusFactorySite": "d", "MachineLastMatchTime": NOW},
    ]
    assert offline_requests(ads, NOW, 300, factory="campus") == {"a": 5, "d": 1}
    merged = parse_ad(
        '[Offline = true; CampusFactoryName = "campus"; CampusFactorySite = "a"; MachineLastMatchTime = 999990; '
        'OfflineMatches = { [ Scheduler = "s"; AutoclusterID = 13; RequestCount = 3 ] }]'
    )
    assert offline_requests([merged], NOW, 300, factory="campus") == {"a": 3}


def test_pilot_constraint_parses() -> None:
    from campus_factory.classads import check_expression

    assert check_expression(pilot_constraint('ca"mpus'))
