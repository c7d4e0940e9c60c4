"""Fault isolation with cloud APIs: EC2 answering 5xx and throttling (moto with injected faults,
marker `ec2`) and OpenStack answering 500 (mimic, marker `openstack`) on one site, while another
site keeps getting a pilot every cycle, each cycle's duration bounded; the cloud site backs off
and is served again once its API is healthy."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from campus_factory.config import Config, parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import CycleReport, Factory
from campus_factory.providers.base import Provider
from campus_factory.providers.ec2 import Ec2Provider
from campus_factory.providers.fake import FakeProvider
from campus_factory.providers.openstack import OpenStackProvider

BOUND = 10.0  # seconds: max_attempts = 3 with botocore's backoff stays well below it
FAST_BACKOFF = {"backoff_after": 1, "backoff_base": 1, "backoff_max": 2}


def make_config(tmp_path: Path, name: str, cloud_site: dict[str, Any]) -> Config:
    slot = {"cpus": 1, "memory_mb": 100, "disk_mb": 0}
    limits = {"max_pilots": 20, "max_queued": 20, "max_submit_per_cycle": 1}
    return parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "submission_grace": 60},
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {"name": "good", "provider": "fake", "slot": slot, "limits": limits, "walltime": "1h"},
                {
                    "walltime": "1h",
                    "idle_timeout": "1h",
                    "slot": slot,
                    "limits": {"max_pilots": 3, "max_queued": 3, "max_submit_per_cycle": 1},
                    "isolation": FAST_BACKOFF,
                    **cloud_site,
                },
            ],
        }
    )


def demand() -> StaticDemand:
    return StaticDemand(
        [
            JobGroup(f"g-{s}", 30, cpus=1, memory_mb=100, disk_mb=0, requirements=f'CampusFactorySite == "{s}"')
            for s in ("good", "cloud")
        ]
    )


def jobs_at(f: Factory, site: str) -> int:
    return sum(1 for p in f.ledger.pilots(factory=f.name, site=site, limit=1000) if p.job_id)


def served_cycle(f: Factory, good: FakeProvider) -> CycleReport:
    """One cycle; the good site got exactly one more pilot, no error of its own, on time."""
    before = len(good.jobs)
    t0 = time.monotonic()
    report = asyncio.run(f.run_once())
    took = time.monotonic() - t0
    assert len(good.jobs) == before + 1, report.errors
    assert not [e for e in report.errors if e.startswith("good")], report.errors
    assert took < BOUND, f"the cycle took {took:.1f} s: {report.errors}"
    return report


def until_served(f: Factory, good: FakeProvider, before: int, timeout: float = 30) -> CycleReport:
    deadline = time.monotonic() + timeout
    while True:
        report = served_cycle(f, good)
        if jobs_at(f, "cloud") > before or time.monotonic() > deadline:
            return report
        time.sleep(0.3)


def cleanup(f: Factory, provider: Provider) -> None:
    jobs = [p.job_id for p in f.ledger.live_pilots(f.name, "cloud") if p.job_id]
    if jobs:
        asyncio.run(provider.cancel(jobs, graceful=False))


def run_outage(
    f: Factory,
    good: FakeProvider,
    *,
    break_api: Callable[[], None],
    heal: Callable[[], None],
    api_calls: Callable[[], int],
) -> None:
    """Healthy cycle, a failed submission, a backoff with no API call, then recovery."""
    served_cycle(f, good)
    assert jobs_at(f, "cloud") == 1
    break_api()
    report = served_cycle(f, good)
    assert [e for e in report.errors if e.startswith("cloud: act failed")], report.errors
    failed = [p for p in f.ledger.pilots(factory=f.name, site="cloud", limit=100) if p.job_id is None]
    assert [p.state.value for p in failed] == ["failed"]
    # backing off: the next cycle does not even call the API to submit
    calls = api_calls()
    report = served_cycle(f, good)
    assert report.plan is not None and report.plan.site("cloud").submit == 0
    assert report.plan.site("cloud").health == "backoff", report.plan.site("cloud")
    assert api_calls() == calls and jobs_at(f, "cloud") == 1
    heal()
    time.sleep(1.1)  # the backoff (1 s) runs out
    report = until_served(f, good, 1)
    assert jobs_at(f, "cloud") == 2, (report.errors, report.plan and report.plan.site("cloud"))
    assert report.errors == []


@pytest.mark.ec2
@pytest.mark.parametrize(
    ("code", "status", "message"),
    [("InternalError", 500, "cloud: "), ("RequestLimitExceeded", 503, "throttled by the API")],
    ids=["5xx", "throttling"],
)
def test_ec2_submission_faults_isolate_the_site(tmp_path: Path, ec2, code: str, status: int, message: str) -> None:
    name = "ce" + uuid.uuid4().hex[:6]
    cloud = {"endpoint_url": ec2.url, "image": ec2.image(), "instance_type": "t3.micro", "max_attempts": 3}
    cfg = make_config(tmp_path, name, {"name": "cloud", "provider": "ec2", "cloud": {**cloud, "request_timeout": 5}})
    good, provider = FakeProvider("good"), Ec2Provider(cfg.sites[1], cfg.pilot, name)
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand(), {"good": good, "cloud": provider})
    before = ec2.calls("RunInstances")

    def break_api() -> None:
        ec2.fault("RunInstances", code, status=status, times=-1)

    try:
        run_outage(f, good, break_api=break_api, heal=ec2.reset, api_calls=lambda: ec2.calls("RunInstances"))
        # botocore retried the faulty call: max_attempts calls for the one failed submission
        assert ec2.calls("RunInstances") - before == 1 + 3 + 1
        events = [
            t.detail for p in f.ledger.pilots(factory=name, site="cloud") for t in f.ledger.transitions(p.pilot_id)
        ]
        assert any(code in (d or "") and message in (d or "") for d in events), events
    finally:
        cleanup(f, provider)


@pytest.mark.ec2
def test_ec2_observation_5xx_makes_the_site_unhealthy_not_the_loop(tmp_path: Path, ec2) -> None:
    name = "co" + uuid.uuid4().hex[:6]
    cloud = {"endpoint_url": ec2.url, "image": ec2.image(), "instance_type": "t3.micro", "max_attempts": 2}
    cfg = make_config(tmp_path, name, {"name": "cloud", "provider": "ec2", "cloud": cloud})
    good, provider = FakeProvider("good"), Ec2Provider(cfg.sites[1], cfg.pilot, name)
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand(), {"good": good, "cloud": provider})
    try:
        served_cycle(f, good)
        ec2.fault("DescribeInstances", "ServiceUnavailable", status=503, times=-1)
        runs = ec2.calls("RunInstances")
        for _ in range(2):
            report = served_cycle(f, good)
            assert [e for e in report.errors if e.startswith("cloud: observe failed")], report.errors
            assert report.plan is not None and report.plan.site("cloud").health == "unhealthy"
        assert ec2.calls("RunInstances") == runs  # an unobserved site gets nothing
        ec2.reset()
        report = until_served(f, good, 1)
        assert jobs_at(f, "cloud") == 2 and report.errors == []
    finally:
        cleanup(f, provider)


@pytest.mark.openstack
def test_openstack_500_isolates_the_site(tmp_path: Path, nova) -> None:
    name = "os" + uuid.uuid4().hex[:6]
    cloud = {
        "credentials_file": str(nova.clouds_yaml(tmp_path / "clouds.yaml")),
        "profile": "mimic",
        "region": "ORD",
        "image": "img-pilot",
        "instance_type": "512MB Standard Instance",
        "request_timeout": 5,
    }
    cfg = make_config(tmp_path, name, {"name": "cloud", "provider": "openstack", "cloud": cloud})
    good, provider = FakeProvider("good"), OpenStackProvider(cfg.sites[1], cfg.pilot, name)
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand(), {"good": good, "cloud": provider})

    def break_api() -> None:
        nova.behave("fail", {"code": 500, "type": "computeFault", "message": "injected internal error"})

    try:
        run_outage(f, good, break_api=break_api, heal=nova.clear, api_calls=lambda: len(nova.servers()))
        assert len(nova.servers()) == 2
    finally:
        cleanup(f, provider)
