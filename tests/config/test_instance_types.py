"""cloud.instance_types: what a site admin may write, and how sizing 'auto' resolves with it."""

from __future__ import annotations

from typing import Any

import pytest

from campus_factory.config import parse_config
from campus_factory.errors import ConfigError

TYPES = [{"name": "m5.large", "cost_per_hour": 0.096}, {"name": "m5.xlarge", "cost_per_hour": 0.192}]


def site(provider: str = "ec2", slot: dict[str, Any] | None = None, **cloud: Any) -> Any:
    table = {"name": "c", "provider": provider, "cloud": {"image": "ami-1", **cloud}}
    if slot is not None:
        table["slot"] = slot
    return parse_config({"sites": [table]}).sites[0]


def problems(**kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        site(**kw)
    return str(info.value.problems)


@pytest.mark.parametrize("provider", ["ec2", "openstack"])
def test_several_types_make_auto_fit_and_one_type_stays_fixed(provider: str) -> None:
    assert site(provider, instance_types=TYPES).sizing == "fit"
    assert site(provider, instance_types=TYPES[:1]).sizing == "fixed"
    assert site(provider, instance_type="m5.large").sizing == "fixed"  # the existing configs, unchanged
    assert site(provider, {"sizing": "fit"}, instance_types=TYPES[:1]).sizing == "fit"
    names_only = site(provider, instance_types=[{"name": "4GB Standard Instance"}, {"name": "general1-1"}])
    assert [t.name for t in names_only.cloud.instance_types] == ["4GB Standard Instance", "general1-1"]
    assert names_only.cloud.instance_types[0].cost_per_hour is None and not names_only.cloud.instance_types[0].declared


def test_declared_shapes_and_the_ttl() -> None:
    s = site(instance_types=[{"name": "x1", "cpus": 4, "memory_mb": 8000, "gpus": 1}], instance_types_ttl="1h")
    t = s.cloud.instance_types[0]
    assert t.declared and (t.cpus, t.memory_mb, t.disk_mb, t.gpus) == (4, 8000, None, 1)
    assert s.cloud.instance_types_ttl == 3600.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"slot": {"sizing": "fit"}, "instance_type": "m5.large"}, "needs the instance types to choose from"),
        ({"slot": {"sizing": "fixed"}, "instance_types": TYPES}, 'slot.sizing = "fixed" with several'),
        ({"instance_type": "m5.large", "instance_types": TYPES}, "not both"),
        ({"instance_types": [TYPES[0], TYPES[0]]}, "listed twice"),
        ({"instance_types": [{"name": "m5.large\nX"}]}, "is not an instance type"),
        ({"instance_types": [{"name": " m5"}]}, "is not an instance type"),
        ({"instance_types": [{"name": "m5", "cost_per_hour": -1}]}, "greater than or equal to 0"),
        ({"instance_types": [{"name": "m5", "cost_per_hour": float("nan")}]}, "finite"),
        ({"instance_types": [{"name": "m5", "cpus": 0}]}, "greater than or equal to 1"),
        ({"instance_types": [{"name": "m5", "vcpus": 2}]}, "instance_types[m5].vcpus', 'unknown key"),
        ({"provider": "libcloud", "instance_types": TYPES, "driver": "ec2"}, "not supported on libcloud sites yet"),
        ({"provider": "libcloud", "slot": {"sizing": "fit"}, "driver": "ec2"}, "not supported on libcloud sites yet"),
        ({"provider": "kubernetes", "instance_types": TYPES}, "not supported on kubernetes sites yet"),
    ],
)
def test_what_is_refused(kw: dict[str, Any], message: str) -> None:
    assert message in problems(**kw)
