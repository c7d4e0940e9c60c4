"""Matching job groups against slot ads both ways with classad2; slot-ad precedence."""

from __future__ import annotations

import pytest

from campus_factory.classads import conjuncts, failed_clauses, parse_ad
from campus_factory.domain import JobGroup
from campus_factory.planner.match import MatchCache, group_key, job_runtime_s
from campus_factory.planner.slotad import SlotPolicy, build_slot_ad, start_expression
from campus_factory.planner.types import SiteSpec

BASE_REQ = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && '
    "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus) && (TARGET.HasFileTransfer) && "
    '(versionGE(split(TARGET.CondorVersion)[1], "24.0.0") || TARGET.Disk >= RequestDisk)'
)


NO_POLICY = SlotPolicy()


def site(name: str = "s", policy: SlotPolicy = NO_POLICY, learned: dict[str, str] | None = None, **kw: object):
    res = {"cpus": 8, "memory_mb": 16000, "disk_mb": 100000, "gpus": 0, "walltime_s": 4 * 3600.0}
    res.update(kw)  # type: ignore[arg-type]
    ad = build_slot_ad(
        name, res["cpus"], res["memory_mb"], res["disk_mb"], res["gpus"], res["walltime_s"], policy, learned
    )
    return SiteSpec(
        name,
        int(res["cpus"]),
        int(res["memory_mb"]),
        int(res["disk_mb"]),
        int(res["gpus"]),
        walltime_s=float(res["walltime_s"]),
        slot_ad=ad,
    )


def group(req: str = BASE_REQ, **kw: object) -> JobGroup:
    base: dict[str, object] = {"group_id": "g", "count": 1, "memory_mb": 2000, "disk_mb": 1000, "owner": "alice"}
    base.update(kw)
    return JobGroup(requirements=req, **base)  # type: ignore[arg-type]


CVMFS = SlotPolicy(attributes=(("HasCVMFS", "true"),))

CASES = [
    # (name, group, site, ok, failed, clause fragment)
    ("plain condor_submit job", group(), site(), True, "", ""),
    ("memory too big", group(memory_mb=32000), site(), False, "resources", "memory 32000 MB > 16000 MB"),
    ("gpus missing", group(gpus=1), site(), False, "resources", "gpus 1 > 0"),
    ("cpus too many", group(cpus=16), site(), False, "resources", "cpus 16 > 8"),
    (
        "runtime beyond the pilot's lifetime",
        group(attributes={"MaxWallTimeMins": "600"}),
        site(),
        False,
        "resources",
        "runtime 36000 s > pilot lifetime 14400 s",
    ),
    (
        "needs CVMFS, site lacks it",
        group(BASE_REQ + " && TARGET.HasCVMFS =?= true"),
        site(),
        False,
        "job Requirements",
        "TARGET.HasCVMFS =?= true",
    ),
    ("needs CVMFS, declared", group(BASE_REQ + " && TARGET.HasCVMFS =?= true"), site(policy=CVMFS), True, "", ""),
    ("unscoped target reference", group('Memory >= RequestMemory && OpSys == "LINUX"'), site(), True, "", ""),
    (
        "site START refuses big jobs",
        group(memory_mb=9000),
        site(policy=SlotPolicy(start="TARGET.RequestMemory <= 8000")),
        False,
        "site START",
        "RequestMemory <= 8000",
    ),
    (
        "owner not allowed",
        group(owner="mallory"),
        site(policy=SlotPolicy(allowed_owners=("alice", "bob"))),
        False,
        "site START",
        "member(TARGET.Owner",
    ),
    ("owner allowed", group(), site(policy=SlotPolicy(allowed_owners=("alice",))), True, "", ""),
    (
        "group allowed",
        group(owner="zed", attributes={"AcctGroup": '"group_phys"'}),
        site(policy=SlotPolicy(allowed_owners=("alice",), allowed_groups=("group_phys",))),
        True,
        "",
        "",
    ),
    (
        "cloud-only job on a batch site",
        group("TARGET.IsCloudNode =?= true"),
        site(),
        False,
        "job Requirements",
        "IsCloudNode",
    ),
    (
        "cloud-only job on a cloud site",
        group("TARGET.IsCloudNode =?= true"),
        site(policy=SlotPolicy(attributes=(("IsCloudNode", "true"),))),
        True,
        "",
        "",
    ),
    (
        "site by name",
        group('TARGET.CampusFactorySite == "beta"'),
        site("alpha"),
        False,
        "job Requirements",
        "CampusFactorySite",
    ),
    (
        "job avoids preemptable sites",
        group("TARGET.CampusFactoryPreemptable =!= true"),
        site(policy=SlotPolicy(preemptable=True)),
        False,
        "job Requirements",
        "Preemptable",
    ),
    ("undefined attribute is no match", group("TARGET.HasMagic"), site(), False, "job Requirements", "HasMagic"),
]


@pytest.mark.parametrize(("name", "g", "s", "ok", "failed", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_match_both_ways(name: str, g: JobGroup, s: SiteSpec, ok: bool, failed: str, fragment: str) -> None:
    cache = MatchCache()
    outcome = cache.match(g, s)
    assert outcome.ok is ok
    assert outcome.failed == failed
    if failed == "resources":
        assert fragment in outcome.detail
    elif failed:
        clauses = cache.clauses(g, s)
        assert any(side == failed and fragment in clause for side, clause, _ in clauses), clauses


def test_library_agrees_with_symmetric_match() -> None:
    s = site(policy=SlotPolicy(start="TARGET.RequestMemory <= 8000"))
    cache = MatchCache()
    for mem in (1000, 9000):
        g = group(memory_mb=mem)
        job = parse_ad(
            f'[RequestMemory = {mem}; RequestDisk = 1024000; RequestCpus = 1; Owner = "alice"; '
            f"Requirements = {BASE_REQ}]"
        )
        machine = parse_ad("[" + "; ".join(f"{k} = {v}" for k, v in s.slot_ad.attributes) + "]")  # type: ignore[union-attr]
        assert cache.match(g, s).ok is bool(job.symmetricMatch(machine))


def test_cache_hits_on_the_second_plan_and_keys_ignore_count_and_id() -> None:
    cache = MatchCache()
    s = site()
    cache.match(group(), s)
    assert (cache.hits, cache.misses) == (0, 1)
    cache.match(group(group_id="other", count=99), s)
    assert (cache.hits, cache.misses) == (1, 1)
    assert group_key(group()) == group_key(group(group_id="x", count=5))
    cache.match(group(), site(policy=CVMFS))  # another slot ad: another entry
    assert cache.misses == 2


def test_cache_forgets_old_entries_when_full() -> None:
    cache = MatchCache(max_entries=1, keep_cycles=1)
    for i in range(3):
        cache.begin()
        cache.match(group(memory_mb=1000 + i), site())
        cache.end()
    assert len(cache) == 1


def test_bad_requirements_is_reported_not_raised() -> None:
    outcome = MatchCache().match(group("TARGET.Memory >= ("), site())
    assert not outcome.ok and outcome.failed == "ad"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a && b", ["a", "b"]),
        ("(a && b) && c", ["a", "b", "c"]),
        ("a || (b && c)", ["a || (b && c)"]),
        ('x == "p && q" && y', ['x == "p && q"', "y"]),
        ("member(x, {1, 2}) && f(a && b)", ["member(x, {1, 2})", "f(a && b)"]),
        ("((a))", ["a"]),
        ("(a) || (b)", ["(a) || (b)"]),
    ],
)
def test_conjuncts(text: str, parts: list[str]) -> None:
    assert conjuncts(text) == parts


def test_failed_clauses_names_values() -> None:
    job = parse_ad("[RequestMemory = 4000]")
    machine = parse_ad('[Memory = 2000; OpSys = "LINUX"]')
    out = failed_clauses('TARGET.OpSys == "LINUX" && TARGET.Memory >= RequestMemory && TARGET.Foo', job, machine)
    assert out == [("TARGET.Memory >= RequestMemory", "false"), ("TARGET.Foo", "UNDEFINED")]


# -- slot ads: precedence ------------------------------------------------------------------------
def test_precedence_defaults_declared_learned_pinned_owned() -> None:
    policy = SlotPolicy(
        attributes=(("HasCVMFS", "true"), ("OpSys", '"FREEBSD"'), ("Name", '"mine"'), ("Custom", "7")),
        pinned=("Custom",),
    )
    learned = {
        "HasCVMFS": "false",
        "Memory": "15500",
        "Custom": "8",
        "LoadAvg": "0.5",
        "START": "false",
        "HasSingularity": "true",
    }
    ad = build_slot_ad("alpha", 8, 16000, 1000, 0, 3600, policy, learned).as_dict()
    assert ad["HasCVMFS"] == "false"  # learned beats declared
    assert ad["OpSys"] == '"FREEBSD"'  # declared beats default
    assert ad["Memory"] == "15500"  # learned beats declared resources
    assert ad["Custom"] == "7"  # pinned: declared wins
    assert "LoadAvg" not in ad  # dynamic attributes are never learned
    assert ad["HasSingularity"] == "true"  # Has* facts are learned
    assert ad["START"] == "true" and ad["Requirements"] == "START"  # factory-owned
    assert ad["Name"] == '"campus-factory@alpha"' and ad["CampusFactorySite"] == '"alpha"'
    assert ad["Disk"] == str(1000 * 1024)  # KiB, like a startd
    assert "CondorVersion" in ad


def test_start_expression_adds_owners_and_groups() -> None:
    assert start_expression("true") == "true"
    assert start_expression("true", ["a"]) == 'member(TARGET.Owner, { "a" })'
    both = start_expression("Cpus > 1", ["a"], ["g"])
    assert both == '(Cpus > 1) && (member(TARGET.Owner, { "a" }) || member(TARGET.AcctGroup, { "g" }))'


def test_slot_ad_signature_changes_with_content_only() -> None:
    a = build_slot_ad("x", 8, 16000, 0, 0, 3600)
    assert a.signature == build_slot_ad("x", 8, 16000, 0, 0, 3600).signature
    assert a.signature != build_slot_ad("x", 8, 16001, 0, 0, 3600).signature


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({}, None),
        ({"MaxWallTimeMins": "90"}, 5400.0),
        ({"AllowedExecuteDuration": "100"}, 100.0),
        ({"MaxWallTimeMins": "soon"}, None),
    ],
)
def test_job_runtime(attrs: dict[str, str], expected: float | None) -> None:
    assert job_runtime_s(group(attributes=attrs)) == expected
