"""Cloud sites choosing among instance types, against the real services: the shapes read from
moto's DescribeInstanceTypes (marker `ec2`) and mimic's flavor list (marker `openstack`), the
loop starting each pilot as the cheapest type that fits, and a bad type costing only its site."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.providers.clouds.conftest import ec2_config, openstack_config

from campus_factory.config import Config
from campus_factory.demand import StaticDemand
from campus_factory.domain import InstanceShape, JobGroup
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.planner import explain_plan
from campus_factory.providers.ec2 import Ec2Provider
from campus_factory.providers.openstack import OpenStackProvider

EC2_TYPES = [
    {"name": "t3.micro", "cost_per_hour": 0.0104},
    {"name": "m5.large", "cost_per_hour": 0.096},
    {"name": "r5.large", "cost_per_hour": 0.126},
    {"name": "g4dn.xlarge", "cost_per_hour": 0.526},
]
FLAVORS = [
    {"name": "512MB Standard Instance", "cost_per_hour": 0.02},
    {"name": "2GB Standard Instance", "cost_per_hour": 0.08},
    {"name": "general1-4", "cost_per_hour": 0.16},  # a flavor named by its id
]


def groups() -> list[JobGroup]:
    return [
        JobGroup("small", 2, cpus=1, memory_mb=256, disk_mb=0),
        JobGroup("mem", 1, cpus=1, memory_mb=1500, disk_mb=0),
        JobGroup("wide", 1, cpus=4, memory_mb=3000, disk_mb=0),
    ]


def run(cfg: Config, provider: Any, demand: list[JobGroup]) -> tuple[Factory, Any]:
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), StaticDemand(demand), {cfg.sites[0].name: provider})
    return f, asyncio.run(f.run_once())


def cleanup(f: Factory, site: str) -> None:
    ids = [p.job_id for p in f.ledger.live_pilots(f.name) if p.job_id]
    if ids:
        assert all(r.ok for r in asyncio.run(f.providers[site].cancel(ids, graceful=False)))


@pytest.mark.ec2
def test_ec2_shapes_come_from_describe_instance_types_and_each_pilot_is_its_type(tmp_path: Path, ec2) -> None:
    name = "it" + uuid.uuid4().hex[:6]
    cfg = ec2_config(tmp_path, ec2, name, instance_type=None, instance_types=EC2_TYPES)
    site = cfg.sites[0]
    assert site.sizing == "fit"
    p = Ec2Provider(site, cfg.pilot, name)
    shapes = asyncio.run(p.instance_shapes())
    assert shapes == (
        InstanceShape("t3.micro", 2, 1024, 0, 0, 0.0104, "t3.micro"),
        InstanceShape("m5.large", 2, 8192, 0, 0, 0.096, "m5.large"),
        InstanceShape("r5.large", 2, 16384, 0, 0, 0.126, "r5.large"),
        InstanceShape("g4dn.xlarge", 4, 16384, 125000, 1, 0.526, "g4dn.xlarge"),
    )
    # slot.disk_mb = 0 in the test config: EBS-only types have no scratch disk of their own
    before = ec2.calls("DescribeInstanceTypes")
    f, report = run(cfg, p, groups())
    try:
        assert report.errors == [] and report.submitted == 3, report
        sp = report.plan.site("cloud")
        # 4 cores: g4dn.xlarge (the only one); 1.5 GB: m5.large, whose second core takes a 256 MB job;
        # the other 256 MB job: t3.micro, the cheapest
        assert sorted(sp.instance_types) == ["g4dn.xlarge", "m5.large", "t3.micro"]
        assert "of type t3.micro" in explain_plan(report.plan)
        started = sorted(i["InstanceType"] for i in ec2.instances())
        assert started == ["g4dn.xlarge", "m5.large", "t3.micro"]
        by_id = {i["InstanceId"]: i["InstanceType"] for i in ec2.instances()}
        pilots = {by_id[r.job_id]: (r.cpus, r.memory_mb) for r in f.ledger.live_pilots(name) if r.job_id}
        assert pilots == {"t3.micro": (2, 1024), "m5.large": (2, 8192), "g4dn.xlarge": (4, 16384)}
        asyncio.run(f.run_once())  # the shapes are kept: read once per TTL, not every cycle
        assert ec2.calls("DescribeInstanceTypes") == before + 1
    finally:
        cleanup(f, "cloud")


@pytest.mark.ec2
def test_an_unknown_instance_type_costs_only_its_site_a_clear_error(tmp_path: Path, ec2) -> None:
    name = "iu" + uuid.uuid4().hex[:6]
    types = [*EC2_TYPES[:2], {"name": "m5.nosuch"}]
    cfg = ec2_config(tmp_path, ec2, name, instance_type=None, instance_types=types)
    f, report = run(cfg, Ec2Provider(cfg.sites[0], cfg.pilot, name), groups())
    assert report.submitted == 0 and ec2.instances() == []
    [error] = report.errors
    assert error.startswith("cloud: reading instance types failed") and "m5.nosuch" in error, error
    assert report.plan.site("cloud").bound_by == "unhealthy"


@pytest.mark.openstack
def test_openstack_flavors_come_from_the_flavor_list_and_each_server_is_its_flavor(tmp_path: Path, nova) -> None:
    name = "io" + uuid.uuid4().hex[:6]
    cfg = openstack_config(tmp_path, nova, name, instance_type=None, instance_types=FLAVORS)
    site = cfg.sites[0]
    p = OpenStackProvider(site, cfg.pilot, name)
    shapes = asyncio.run(p.instance_shapes())
    # mimic serves its fixed Rackspace flavors: ids 2 and 4, general1-4; disk in GB
    assert [(s.name, s.ref, s.cpus, s.memory_mb, s.disk_mb) for s in shapes] == [
        ("512MB Standard Instance", "2", 1, 512, 20000),
        ("2GB Standard Instance", "4", 2, 2048, 80000),
        ("general1-4", "general1-4", 4, 4096, 80000),
    ]
    f, report = run(cfg, p, groups())
    try:
        assert report.errors == [] and report.submitted == 3, report
        # largest jobs first: 4 cores in general1-4; 1.5 GB in a 2GB flavor, whose second core takes a
        # 256 MB job; the other 256 MB job in the cheapest flavor, 512MB
        flavors = sorted(s["flavor"]["id"] for s in nova.servers())
        assert flavors == ["2", "4", "general1-4"]
        assert "1 x 512MB Standard Instance (1 core(s)/512 MB)" in explain_plan(report.plan)
    finally:
        cleanup(f, "os1")
