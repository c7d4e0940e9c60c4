"""The Apache Libcloud provider through libcloud's EC2 driver against the moto server (marker `ec2`).

Only the EC2 driver is exercised; other drivers are untested."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from campus_factory.config import parse_config
from campus_factory.domain import PilotRequest
from campus_factory.errors import QuotaExceeded, ThrottledError
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.libcloud import LibcloudProvider

pytestmark = pytest.mark.ec2


@pytest.fixture
def provider(ec2, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LibcloudProvider:
    monkeypatch.setenv("CF_TEST_KEY", "testing")
    monkeypatch.setenv("CF_TEST_SECRET", "testing")
    cfg = parse_config(
        {
            "sites": [
                {
                    "name": "lc",
                    "provider": "libcloud",
                    "cloud": {
                        "driver": "ec2",
                        "endpoint_url": ec2.url,
                        "region": "us-east-1",
                        "image": ec2.image(),
                        "instance_type": "t3.micro",
                        "key_env": "CF_TEST_KEY",
                        "secret_env": "CF_TEST_SECRET",
                        "driver_options": {"signature_version": "4"},
                    },
                }
            ]
        }
    )
    return LibcloudProvider(cfg.sites[0], cfg.pilot, "t")


def submission(n: int) -> Submission:
    sub = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"lc-{uuid.uuid4().hex[:10]}", 1, 100, 0, 0, 3600.0) for _ in range(n))
    return Submission(sub, f"cf-t-{sub}", pilots)


def test_nodes_boot_are_tagged_and_leave(provider: LibcloudProvider, ec2) -> None:
    ec2.reset(boot_seconds=1.0)
    sub = submission(2)
    ids = [s.job_id for s in asyncio.run(provider.submit(sub))]
    obs = asyncio.run(provider.observe(ids, "cf-t-"))
    assert {s.state for s in obs.statuses.values()} == {JobState.PENDING}
    assert sorted((s.tag, s.array_index) for s in obs.tagged) == [(sub.tag, 0), (sub.tag, 1)]
    client = ec2.client()
    attr = client.describe_instance_attribute(InstanceId=ids[0], Attribute="userData")
    assert "IsCloudNode = True" in base64.b64decode(attr["UserData"]["Value"]).decode()
    time.sleep(1.1)
    obs = asyncio.run(provider.observe(ids, "cf-t-"))
    assert {s.state for s in obs.statuses.values()} == {JobState.RUNNING}
    assert all(r.ok for r in asyncio.run(provider.cancel([ids[0]], graceful=True)))
    assert all(r.ok for r in asyncio.run(provider.cancel([ids[1]], graceful=False)))
    obs = asyncio.run(provider.observe(ids, "cf-t-"))
    assert obs.statuses[ids[0]].state is JobState.COMPLETED
    assert obs.statuses[ids[1]].state is JobState.CANCELLED


def test_errors_are_classified_and_nothing_is_left(provider: LibcloudProvider, ec2) -> None:
    ec2.fault("RunInstances", "InstanceLimitExceeded", message="You have requested more instances than your quota")
    with pytest.raises(QuotaExceeded, match="quota"):
        asyncio.run(provider.submit(submission(1)))
    ec2.fault("DescribeInstances", "RequestLimitExceeded", status=503, message="Request limit exceeded.")
    with pytest.raises(ThrottledError, match="throttled"):
        asyncio.run(provider.observe([], "cf-t-"))
    # a failure on the second node of a submission destroys the first
    calls = {"n": 0}
    real = provider.create_node

    def flaky(submission: Submission, index: int, glidein: Any = None) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            ec2.fault("RunInstances", "InsufficientInstanceCapacity", message="no capacity")
        return real(submission, index, glidein)

    provider.create_node = flaky  # type: ignore[method-assign]
    with pytest.raises(Exception, match="capacity"):
        asyncio.run(provider.submit(submission(2)))
    assert ec2.instances() == []
