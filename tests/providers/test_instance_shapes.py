"""Instance types' shapes as the clouds answer them, parsed at the edge: bounded or a clear error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campus_factory.config import parse_config
from campus_factory.domain import InstanceShape, PilotRequest
from campus_factory.errors import NotSupportedError, ProviderError, SubmitError
from campus_factory.loop.instance_types import InstanceTypes
from campus_factory.providers._cloud import instance_shapes, type_of
from campus_factory.providers.ec2 import ec2_shape

#: a DescribeInstanceTypes entry as AWS documents it (trimmed)
G4DN = {
    "InstanceType": "g4dn.xlarge",
    "VCpuInfo": {"DefaultVCpus": 4, "DefaultCores": 2},
    "MemoryInfo": {"SizeInMiB": 16384},
    "InstanceStorageInfo": {"TotalSizeInGB": 125, "Disks": [{"SizeInGB": 125, "Count": 1, "Type": "ssd"}]},
    "GpuInfo": {"Gpus": [{"Name": "T4", "Manufacturer": "NVIDIA", "Count": 1}]},
}
M5 = {"InstanceType": "m5.large", "VCpuInfo": {"DefaultVCpus": 2}, "MemoryInfo": {"SizeInMiB": 8192}}


def site(types: list[dict[str, Any]], ttl: float = 3600.0, **kw: Any) -> Any:
    cloud = {"image": "ami-1", "instance_types": types, "instance_types_ttl": ttl}
    table = {"name": "c", "provider": "ec2", "slot": {"disk_mb": 5000}, "cloud": cloud, **kw}
    return parse_config({"sites": [table]}).sites[0]


def test_ec2_answers_become_shapes_with_costs() -> None:
    s = site([{"name": "g4dn.xlarge", "cost_per_hour": 0.526}, {"name": "m5.large"}], cost_per_core_hour=0.05)
    shapes = instance_shapes(s, {"g4dn.xlarge": ec2_shape(G4DN), "m5.large": ec2_shape(M5)})
    assert shapes == (
        InstanceShape("g4dn.xlarge", 4, 16384, 125000, 1, 0.526, "g4dn.xlarge"),
        InstanceShape("m5.large", 2, 8192, 5000, 0, 0.1, "m5.large"),  # EBS only: slot.disk_mb; 2 x 0.05
    )


def test_declared_values_win_and_a_declared_type_needs_no_answer() -> None:
    s = site([{"name": "m5.large", "memory_mb": 7000}, {"name": "x9", "cpus": 8, "memory_mb": 1000}])
    shapes = instance_shapes(s, {"m5.large": ec2_shape(M5)})
    assert [(t.name, t.cpus, t.memory_mb) for t in shapes] == [("m5.large", 2, 7000), ("x9", 8, 1000)]
    with pytest.raises(ProviderError, match=r"the cloud lists no instance type \(flavor\) 'm5\.large'"):
        instance_shapes(s, {})


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        ({**M5, "VCpuInfo": {"DefaultVCpus": "2"}}, "cpus = '2'"),
        ({**M5, "VCpuInfo": {"DefaultVCpus": 0}}, "cpus = 0"),
        ({**M5, "VCpuInfo": {"DefaultVCpus": True}}, "cpus = True"),
        ({**M5, "MemoryInfo": {"SizeInMiB": 1e300}}, "memory_mb = 1e+300"),
        ({**M5, "MemoryInfo": None}, "memory_mb = None"),
        ({**M5, "GpuInfo": {"Gpus": [{"Count": "lots"}]}}, "gpus = 'lots'"),
        ({**M5, "InstanceStorageInfo": {"TotalSizeInGB": -1}}, "disk_mb = -1000"),
    ],
)
def test_a_malformed_answer_is_an_error_of_that_site(answer: dict[str, Any], what: str) -> None:
    s = site([{"name": "m5.large"}])
    with pytest.raises(ProviderError, match=r"answer for instance type 'm5\.large' is malformed") as info:
        instance_shapes(s, {"m5.large": ec2_shape(answer)})
    assert what in str(info.value) and info.value.site == "c"


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["Count", "x"]), inner, max_size=2),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["VCpuInfo", "MemoryInfo", "GpuInfo", "InstanceStorageInfo"]), junk))
def test_any_answer_is_a_bounded_shape_or_a_provider_error(answer: dict[str, Any]) -> None:
    s = site([{"name": "m5.large"}])
    try:
        [shape] = instance_shapes(s, {"m5.large": ec2_shape(answer)})
    except ProviderError:
        return
    assert 1 <= shape.cpus <= 100_000 and 1 <= shape.memory_mb <= 1 << 31
    assert 0 <= shape.disk_mb <= 1 << 40 and 0 <= shape.gpus <= 10_000


def test_the_type_a_pilot_is_started_as() -> None:
    two = site([{"name": "m5.large"}, {"name": "m5.xlarge"}])
    req = PilotRequest("p", 2, 8192, 0, 0, 60.0, "m5.xlarge")
    assert type_of(two, req) == "m5.xlarge"
    with pytest.raises(SubmitError, match="not listed"):
        type_of(two, PilotRequest("p", 2, 8192, 0, 0, 60.0, "t3.nano"))
    with pytest.raises(SubmitError, match="no instance type"):
        type_of(two, PilotRequest("p", 2, 8192, 0, 0, 60.0))
    assert type_of(site([{"name": "m5.large"}]), PilotRequest("p", 2, 8192, 0, 0, 60.0)) == "m5.large"


class Reader:
    """A provider's instance_shapes as the loop calls it: counts calls, may fail."""

    site = "c"

    def __init__(self, config: Any) -> None:
        self.config, self.calls, self.fail = config, 0, False

    async def instance_shapes(self) -> tuple[InstanceShape, ...]:
        self.calls += 1
        if self.fail:
            raise ProviderError("c: instance types: throttled", site="c")
        return instance_shapes(self.config, {"m5.large": ec2_shape(M5)})


def test_the_loop_reads_shapes_once_then_after_the_ttl_and_keeps_them_on_a_failure() -> None:
    s = site([{"name": "m5.large"}, {"name": "x9", "cpus": 8, "memory_mb": 1000}], ttl=100.0)
    cache, reader = InstanceTypes(), Reader(s)
    assert not cache.known(s) and cache.current() == {}
    for now in (0.0, 50.0, 99.0):
        asyncio.run(cache.refresh(s, reader, now))  # type: ignore[arg-type]
    assert reader.calls == 1 and [t.name for t in cache.current()["c"]] == ["m5.large", "x9"]
    reader.fail = True
    with pytest.raises(ProviderError):
        asyncio.run(cache.refresh(s, reader, 150.0))  # type: ignore[arg-type]
    assert reader.calls == 2 and cache.known(s) and len(cache.current()["c"]) == 2  # the old shapes stay


def test_declared_shapes_need_no_provider_call() -> None:
    s = site([{"name": "a", "cpus": 2, "memory_mb": 4000}, {"name": "b", "cpus": 4, "memory_mb": 8000}])
    cache = InstanceTypes()
    asyncio.run(cache.refresh(s, object(), 0.0))  # type: ignore[arg-type]
    assert [t.cpus for t in cache.current()["c"]] == [2, 4]
    undeclared = site([{"name": "m5.large"}, {"name": "b", "cpus": 4, "memory_mb": 8000}])
    with pytest.raises(NotSupportedError, match="cannot read instance types"):
        asyncio.run(cache.refresh(undeclared, object(), 0.0))  # type: ignore[arg-type]
