"""Tests of demand sources: JSON snapshots, and grouping of real ClassAd job ads."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import classad2
import pytest

from campus_factory.demand import FileDemand, StaticDemand
from campus_factory.demand.fake import groups_from_json
from campus_factory.demand.htcondor import group_job_ads
from campus_factory.domain import JobGroup, group_id_for
from campus_factory.errors import DemandError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def job(cluster: int, proc: int, extra: str = "") -> classad2.ClassAd:
    """A job ad with the usual attributes; ``extra`` adds or overrides ClassAd text."""
    base = {
        "ClusterId": str(cluster),
        "ProcId": str(proc),
        "Owner": '"alice"',
        "RequestCpus": "1",
        "RequestMemory": "2048",
        "RequestDisk": "1048576",
        "Requirements": 'TARGET.OpSys == "LINUX"',
    }
    for item in filter(None, (p.strip() for p in extra.split(";"))):
        name, value = item.split("=", 1)
        base[name.strip()] = value.strip()
    return classad2.ClassAd("[" + "; ".join(f"{k} = {v}" for k, v in base.items()) + "]")


# -- group_job_ads ------------------------------------------------------------------------------
def test_identical_jobs_form_one_group() -> None:
    (group,) = group_job_ads([job(5, 0), job(5, 1), job(6, 0)], "schedd@a")
    assert group.count == 3
    assert group.jobs == ("5.0", "5.1", "6.0")
    assert (group.owner, group.cpus, group.memory_mb, group.disk_mb, group.gpus) == ("alice", 1, 2048, 1024, 0)
    assert group.requirements == 'TARGET.OpSys == "LINUX"'
    assert group.schedd == "schedd@a"
    assert group.attributes == {}


@pytest.mark.parametrize(
    "extra",
    [
        'Owner = "bob"',
        "RequestCpus = 4",
        "RequestMemory = 4096",
        "RequestDisk = 4194304",
        "RequestGPUs = 1",
        'Requirements = TARGET.OpSys == "LINUX" && TARGET.HasCVMFS',
        'CampusFactoryRoute = "cloud-only"',
        "WantCloud = true",
    ],
)
def test_each_significant_attribute_splits_groups(extra: str) -> None:
    groups = group_job_ads([job(1, 0), job(1, 1), job(2, 0, extra)], "s")
    assert sorted(g.count for g in groups) == [1, 2]
    assert len({g.group_id for g in groups}) == 2


def test_unrelated_attributes_do_not_split_groups() -> None:
    groups = group_job_ads([job(1, 0, 'Cmd = "/bin/a"'), job(1, 1, 'Cmd = "/bin/b"; Iwd = "/x"')], "s")
    assert [g.count for g in groups] == [2]


def test_several_groups_keep_first_seen_order() -> None:
    ads = [
        job(1, 0),
        job(2, 0, 'Owner = "bob"; RequestCpus = 4'),
        job(1, 1),
        job(2, 1, 'Owner = "bob"; RequestCpus = 4'),
    ]
    groups = group_job_ads(ads, "s")
    assert [(g.owner, g.cpus, g.jobs) for g in groups] == [("alice", 1, ("1.0", "1.1")), ("bob", 4, ("2.0", "2.1"))]


@pytest.mark.parametrize(
    ("disk_kib", "disk_mb"),
    [("1048576", 1024), ("2048000", 2000), ("1536", 1), ("100", 0), ("10 * 1024 * 1024", 10240)],
)
def test_request_disk_kib_to_mib(disk_kib: str, disk_mb: int) -> None:
    (group,) = group_job_ads([job(1, 0, f"RequestDisk = {disk_kib}")], "s")
    assert group.disk_mb == disk_mb


# classad2 evaluates undefined / error to classad2.Value members, which are IntEnums
# (Undefined == 2, Error == 1): they must not be taken for numbers.
@pytest.mark.parametrize(
    ("extra", "field", "expected"),
    [
        ("RequestMemory = 2 * 1024", "memory_mb", 2048),
        ("RequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 3000)", "memory_mb", 3000),
        ("RequestMemory = 1500.7", "memory_mb", 1500),
        ("RequestCpus = 1 + 3", "cpus", 4),
        ("RequestCpus = undefined", "cpus", 1),
        ('RequestCpus = "four"', "cpus", 1),
        ("RequestCpus = true", "cpus", 1),
        ("RequestCpus = 0", "cpus", 1),
        ("RequestMemory = -5", "memory_mb", 0),
        ("RequestGPUs = 2", "gpus", 2),
        ("RequestGPUs = NoSuchAttr", "gpus", 0),
        ("RequestMemory = 1 / 0", "memory_mb", 1024),
    ],
)
def test_expressions_are_evaluated(extra: str, field: str, expected: int) -> None:
    (group,) = group_job_ads([job(1, 0, extra)], "s")
    assert getattr(group, field) == expected


def test_defaults_of_a_minimal_ad() -> None:
    (group,) = group_job_ads([classad2.ClassAd("[ClusterId = 9; ProcId = 0]")], "s")
    assert (group.owner, group.cpus, group.memory_mb, group.disk_mb, group.gpus) == ("", 1, 1024, 1024, 0)
    assert group.requirements == "true"
    assert group.jobs == ("9.0",)


def test_route_attributes_are_kept() -> None:
    (group,) = group_job_ads([job(1, 0, 'CampusFactoryRoute = "no-cloud"; WantCloud = Owner == "alice"')], "s")
    assert set(group.attributes) == {"CampusFactoryRoute", "WantCloud"}
    assert group.attributes["CampusFactoryRoute"].strip('"') == "no-cloud"
    assert group.attributes["WantCloud"] == 'Owner == "alice"'  # an expression stays ClassAd text


def test_string_attributes_are_classad_text() -> None:
    (group,) = group_job_ads([job(1, 0, 'CampusFactoryRoute = "transparent"')], "s")
    assert group.attributes == {"CampusFactoryRoute": '"transparent"'}


def test_malformed_ads_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def get(self, name: str, default: Any = None) -> Any:
            raise RuntimeError("cannot read this ad")

    with caplog.at_level(logging.WARNING):
        groups = group_job_ads([job(1, 0), Broken(), None, job(1, 1)], "schedd@x")
    assert [g.jobs for g in groups] == [("1.0", "1.1")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("schedd@x" in w and "malformed" in w for w in warnings)


def test_group_ids_are_stable_and_depend_on_the_schedd() -> None:
    a1 = group_job_ads([job(1, 0)], "a")[0].group_id
    a2 = group_job_ads([job(7, 3)], "a")[0].group_id
    b = group_job_ads([job(1, 0)], "b")[0].group_id
    assert a1 == a2 != b
    assert a1.startswith("g") and len(a1) == 11


def test_no_ads_no_groups() -> None:
    assert group_job_ads([], "s") == []


def test_group_id_for() -> None:
    assert group_id_for("a", 1) == group_id_for("a", 1)
    assert group_id_for("a", 1) != group_id_for("a", 2)
    assert group_id_for("a1") != group_id_for("a", 1)


# -- StaticDemand and FileDemand ----------------------------------------------------------------
def test_static_demand_drops_empty_groups() -> None:
    demand = StaticDemand([JobGroup("a", 3), JobGroup("b", 0)])
    assert [g.group_id for g in demand.idle_groups()] == ["a"]
    demand.groups.append(JobGroup("c", 1))
    assert [g.group_id for g in demand.idle_groups()] == ["a", "c"]


def test_example_snapshot() -> None:
    groups = FileDemand(EXAMPLES / "demand-snapshot.json").idle_groups()
    by_id = {g.group_id: g for g in groups}
    assert list(by_id) == ["alice-analysis", "bob-mc", "carol-train", "dave-bigmem"]
    alice = by_id["alice-analysis"]
    assert (alice.count, alice.cpus, alice.memory_mb, alice.disk_mb) == (40, 1, 2000, 2000)
    assert alice.requirements == 'TARGET.OpSys == "LINUX"'
    assert alice.jobs == ("101.0", "101.1", "101.2")
    assert by_id["carol-train"].gpus == 1
    assert by_id["bob-mc"].requirements == "true"


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "demand.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_file_demand_defaults_and_zero_counts(tmp_path: Path) -> None:
    path = write(tmp_path, {"groups": [{"count": 2}, {"id": "none", "count": 0}]})
    (group,) = FileDemand(path).idle_groups()
    assert (group.group_id, group.count, group.cpus, group.memory_mb, group.disk_mb) == ("group0", 2, 1, 1024, 1024)


def test_file_demand_is_reread_each_time(tmp_path: Path) -> None:
    path = write(tmp_path, {"groups": [{"id": "a", "count": 1}]})
    demand = FileDemand(path)
    assert [g.count for g in demand.idle_groups()] == [1]
    write(tmp_path, {"groups": [{"id": "a", "count": 5}]})
    assert [g.count for g in demand.idle_groups()] == [5]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "cannot read"),
        ("", "cannot read"),
        ([1, 2], "'groups' list"),
        ({"groups": {"a": 1}}, "'groups' list"),
        ({"comment": "no groups"}, "'groups' list"),
        ({"groups": ["a"]}, r"groups\[0\]: expected an object"),
        ({"groups": [{"count": 1, "memroy_mb": 5}]}, r"groups\[0\]: unknown keys \['memroy_mb'\]"),
        ({"groups": [{"count": 1}, {"id": "x"}]}, r"groups\[1\]"),
        ({"groups": [{"count": -1}]}, r"count -1 is outside 0\.\."),
        ({"groups": [{"count": 1, "cpus": 0}]}, "cpus 0 is outside"),
        ({"groups": [{"count": 1, "memory_mb": -2}]}, "memory_mb -2 is outside"),
        ({"groups": [{"count": "many"}]}, r"groups\[0\]"),
        ({"groups": [{"count": 1, "attributes": 3}]}, r"groups\[0\]"),
    ],
)
def test_file_demand_errors(tmp_path: Path, content: Any, match: str) -> None:
    path = write(tmp_path, content)
    whole_file = isinstance(content, str) or "'groups' list" in match
    with pytest.raises(DemandError, match=match) as info:  # a bad group: only strict reading raises
        FileDemand(path).idle_groups() if whole_file else groups_from_json(content, str(path))
    assert str(path) in str(info.value)


def test_a_file_demand_skips_a_bad_group_with_a_warning(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, {"groups": [{"id": "bad", "count": 1, "cpus": 0}, {"id": "ok", "count": 2}]})
    with caplog.at_level(logging.WARNING, logger="campus_factory.demand.fake"):
        assert [g.group_id for g in FileDemand(path).idle_groups()] == ["ok"]
    assert any("groups[0]: cpus 0 is outside" in r.getMessage() for r in caplog.records)


def test_missing_demand_file(tmp_path: Path) -> None:
    with pytest.raises(DemandError, match="cannot read the demand snapshot"):
        FileDemand(tmp_path / "missing.json").idle_groups()


def test_groups_from_json_names_its_source() -> None:
    with pytest.raises(DemandError, match=r"^snap: groups\[0\]"):
        groups_from_json({"groups": [{"count": 1, "bogus": 1}]}, "snap")


def test_attributes_the_requirements_refer_to_are_kept_and_split_groups() -> None:
    req = "Requirements = (TARGET.Disk >= RequestDisk) && (TARGET.FileSystemDomain == MY.FileSystemDomain)"
    a = job(1, 0, f'{req}; RequestDisk = DiskUsage; DiskUsage = 45; FileSystemDomain = "a.edu"')
    b = job(1, 1, f'{req}; RequestDisk = DiskUsage; DiskUsage = 45; FileSystemDomain = "b.edu"')
    groups = group_job_ads([a, b], "s")
    assert len(groups) == 2  # same shape, different FileSystemDomain: different groups
    attrs = {g.attributes["FileSystemDomain"] for g in groups}
    assert attrs == {'"a.edu"', '"b.edu"'}
    assert all(g.attributes["DiskUsage"] == "45" for g in groups)
    assert all("Owner" not in g.attributes and "RequestCpus" not in g.attributes for g in groups)
