"""The demand edge (issue 15, item 4): every value of a demand file or a schedd's job ad is
finite, bounded and valid text once it is a job group, or the input gets a DemandError (a demand
file) or the job ad is skipped with a warning (a schedd). Property tests feed any JSON, any bytes
and any ClassAd values; each must give a value or our error, never another exception.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import classad2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from campus_factory.demand import FileDemand
from campus_factory.demand.bounds import LIMITS
from campus_factory.demand.fake import groups_from_json
from campus_factory.demand.htcondor import group_job_ads
from campus_factory.domain import JobGroup
from campus_factory.errors import DemandError

GOOD = '{"id": "good", "count": 2, "owner": "alice"}'
POISONS = {
    "lone surrogate owner": '{"id": "g", "count": 1, "owner": "\\ud800"}',
    "cpus Infinity": '{"id": "g", "count": 1, "cpus": Infinity}',
    "memory NaN": '{"id": "g", "count": 1, "memory_mb": NaN}',
    "cpus 1e300": '{"id": "g", "count": 1, "cpus": 1e300}',
    "count 2.5": '{"id": "g", "count": 2.5}',
    "count true": '{"id": "g", "count": true}',
    "NUL in requirements": '{"id": "g", "count": 1, "requirements": "true\\u0000"}',
    "attribute name with a newline": '{"id": "g", "count": 1, "attributes": {"X\\n": "1"}}',
    "attribute Infinity": '{"id": "g", "count": 1, "attributes": {"X": -Infinity}}',
    "owner of 2000 characters": '{"id": "g", "count": 1, "owner": "' + "x" * 2000 + '"}',
}


def snapshot(*groups: str) -> str:
    return '{"groups": [' + ", ".join(groups) + "]}"


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_a_poisoned_group_costs_only_itself(tmp_path: Path, poison: str, caplog) -> None:
    path = tmp_path / "demand.json"
    path.write_text(snapshot(POISONS[poison], GOOD))
    with caplog.at_level(logging.WARNING, logger="campus_factory.demand.fake"):
        assert [g.group_id for g in FileDemand(path).idle_groups()] == ["good"]
    assert any("groups[0]" in r.getMessage() and len(r.getMessage()) < 600 for r in caplog.records)
    with pytest.raises(DemandError, match=r"groups\[0\]"):  # strict reading names it
        groups_from_json(json.loads(path.read_text(), parse_constant=float), str(path))


@pytest.mark.parametrize(
    "text",
    [snapshot('{"id": "g", "count": 1, "attributes": ' + "[" * 100_000 + "]" * 100_000 + "}", GOOD), "[" * 100_000],
)
def test_json_nested_100k_deep_is_a_demand_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "demand.json"
    path.write_text(text)
    with pytest.raises(DemandError, match="nested deeper"):
        FileDemand(path).idle_groups()


def check_group(g: JobGroup) -> None:
    for name in LIMITS:
        lo, hi = LIMITS[name]
        value = getattr(g, name)
        assert isinstance(value, int) and lo <= value <= hi, (name, value)
    for text in (g.group_id, g.owner, g.requirements, g.schedd, *g.attributes, *g.attributes.values(), *g.jobs):
        text.encode("utf-8")  # valid text
        assert "\x00" not in text


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(), max_size=20)
    | st.sampled_from(["count", "cpus", "owner", "\ud800", "1e999"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
FIELDS = st.sampled_from(
    ["id", "count", "cpus", "memory_mb", "disk_mb", "gpus", "owner", "requirements", "attributes", "schedd", "jobs"]
)
VALUE = st.one_of(JSON, st.integers(-3, 5000), st.text(max_size=12), st.sampled_from([2.0, 1e300, -0.0, "true"]))
GROUP = st.dictionaries(FIELDS, VALUE, max_size=4).map(lambda d: {"count": 1, **d})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(JSON, st.builds(lambda gs: {"groups": gs}, st.lists(GROUP, max_size=4))))
def test_any_json_gives_groups_or_a_demand_error(data: Any) -> None:
    try:
        groups = groups_from_json(data, "prop")
    except DemandError:
        event("refused: DemandError")
        return
    event(f"read: {len(groups)} group(s)")
    for g in groups:
        check_group(g)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(raw=st.one_of(st.binary(max_size=200), st.builds(lambda d: json.dumps(d).encode(), JSON)))
def test_any_bytes_give_groups_or_a_demand_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "demand.json"
    path.write_bytes(raw)
    try:
        groups = FileDemand(path).idle_groups()
    except DemandError:
        event("refused: DemandError")
        return
    event(f"read: {len(groups)} group(s)")
    for g in groups:
        check_group(g)


NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f) if math.isfinite(f) else "1e308 * 10"),
    st.sampled_from(["undefined", "error", '"4"', "true", "RequestCpus", "1/0", "-1", "{1, 2}", "[a = 1]"]),
)
OWNERS = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # classad2 itself refuses surrogates


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cpus=NUMBERS, memory=NUMBERS, disk=NUMBERS, gpus=NUMBERS, owner=OWNERS, long=st.integers(0, 3000))
def test_job_ads_of_any_values_group_into_bounded_groups(
    cpus: str, memory: str, disk: str, gpus: str, owner: str, long: int
) -> None:
    ad = classad2.ClassAd()
    ad["ClusterId"], ad["ProcId"], ad["Owner"] = 1, 0, owner + "x" * long
    for name, text in (("RequestCpus", cpus), ("RequestMemory", memory), ("RequestDisk", disk), ("RequestGPUs", gpus)):
        ad[name] = classad2.ExprTree(text)
    ad["Requirements"] = classad2.ExprTree("TARGET.Memory >= RequestMemory")
    good = classad2.ClassAd('[ClusterId = 2; ProcId = 0; Owner = "alice"; RequestCpus = 1; Requirements = true]')
    groups = group_job_ads([ad, good], "schedd")
    event("odd ad kept" if len(groups) == 2 else "odd ad skipped or merged")
    assert "alice" in {g.owner for g in groups}  # the good job is never lost with the bad one
    for g in groups:
        check_group(g)
