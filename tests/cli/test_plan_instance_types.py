"""plan show / plan explain offline at cloud sites with instance types: declared shapes plan, read ones wait."""

from __future__ import annotations

from campus_factory.cli.plan_cmd import dry_run
from campus_factory.config import parse_config
from campus_factory.domain import JobGroup

NOW = 1_000_000.0


def test_declared_types_plan_offline_and_types_to_read_get_no_action() -> None:
    declared = [{"name": "a2", "cpus": 2, "memory_mb": 4000}, {"name": "a8", "cpus": 8, "memory_mb": 16000}]
    to_read = {"image": "ami-1", "instance_types": [{"name": "m5.large"}, {"name": "m5.xlarge"}]}
    cfg = parse_config(
        {
            "sites": [
                {"name": "read", "provider": "ec2", "cloud": to_read},
                {"name": "decl", "provider": "openstack", "cloud": {"image": "img", "instance_types": declared}},
            ]
        }
    )
    run = dry_run(cfg, [JobGroup("g", 3, cpus=2, memory_mb=3000, disk_mb=0)], use_ledger=False, now=NOW)
    assert run.plan.site("read").submit == 0 and run.plan.site("read").bound_by == "unhealthy"
    decl = run.plan.site("decl")
    assert decl.submit == 3 and decl.instance_types == ("a2",)
    assert next(s for s in run.sites if s.name == "decl").cpus == 8  # the slot: the largest type
