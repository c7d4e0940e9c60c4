"""The EC2 provider against a moto server with boot delay and injected faults (marker `ec2`)."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest
from tests.providers.clouds.conftest import cloud_submission, ec2_config

from campus_factory.errors import CapacityUnavailable, QuotaExceeded, ThrottledError
from campus_factory.providers.base import JobState
from campus_factory.providers.ec2 import Ec2Provider, ec2_state

pytestmark = pytest.mark.ec2


make_config = ec2_config
submission = cloud_submission


def provider(tmp_path: Path, ec2, name: str = "t", **cloud: Any) -> Ec2Provider:
    cfg = make_config(tmp_path, ec2, name, **cloud)
    return Ec2Provider(cfg.sites[0], cfg.pilot, name)


def test_pilots_boot_are_tagged_and_leave(tmp_path: Path, ec2) -> None:
    ec2.reset(boot_seconds=1.5)
    p = provider(tmp_path, ec2)
    sub = submission(p.config, "t", 2)
    out = asyncio.run(p.submit(sub))
    assert [s.pilot_id for s in out] == [r.pilot_id for r in sub.pilots]
    ids = [s.job_id for s in out]
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert {s.state for s in obs.statuses.values()} == {JobState.PENDING}
    assert sorted((s.tag, s.array_index) for s in obs.tagged) == [(sub.tag, 0), (sub.tag, 1)]
    # every tag, the user-data and the shutdown behaviour are on the instance itself
    client = ec2.client()
    inst = client.describe_instances(InstanceIds=[ids[1]])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["cf-factory"] == "t" and tags["cf-site"] == "cloud" and tags["cf-tag"] == sub.tag
    assert tags["cf-pilot"] == sub.pilots[1].pilot_id and tags["cf-index"] == "1"
    assert tags["Name"] == f"{sub.tag}-p1"
    attr = client.describe_instance_attribute(InstanceId=ids[1], Attribute="userData")
    text = base64.b64decode(attr["UserData"]["Value"]).decode()
    assert text.startswith("#cloud-config") and "IsCloudNode = True" in text and sub.pilots[1].pilot_id in text
    behaviour = client.describe_instance_attribute(InstanceId=ids[1], Attribute="instanceInitiatedShutdownBehavior")
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    time.sleep(1.6)
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert {s.state for s in obs.statuses.values()} == {JobState.RUNNING}
    # a graceful leave ends COMPLETED, a removal CANCELLED; unknown ids are simply done
    res = asyncio.run(p.cancel([ids[0]], graceful=True)) + asyncio.run(
        p.cancel([ids[1], "i-0000000000"], graceful=False)
    )
    assert all(r.ok for r in res), res
    obs = asyncio.run(p.observe([*ids, "i-0000000001"], "cf-t-"))
    assert obs.statuses[ids[0]].state is JobState.COMPLETED
    assert obs.statuses[ids[1]].state is JobState.CANCELLED
    assert obs.statuses["i-0000000001"].state is JobState.GONE


def test_quota_capacity_and_throttling_are_classified(tmp_path: Path, ec2) -> None:
    p = provider(tmp_path, ec2)
    ec2.fault("RunInstances", "InstanceLimitExceeded", message="Your quota allows for 0 more running instance(s).")
    with pytest.raises(QuotaExceeded, match="quota") as exc:
        asyncio.run(p.submit(submission(p.config, "t", 1)))
    assert exc.value.code == "InstanceLimitExceeded" and exc.value.site == "cloud"
    # capacity errors are 5xx: botocore retries them (max_attempts in all), then we classify
    before = ec2.calls("RunInstances")
    ec2.fault("RunInstances", "InsufficientInstanceCapacity", status=500, times=-1)
    with pytest.raises(CapacityUnavailable, match="capacity"):
        asyncio.run(p.submit(submission(p.config, "t", 1)))
    assert ec2.calls("RunInstances") - before == 3
    ec2.reset()
    # one throttled answer is absorbed by botocore's retry; a persistent one is raised
    ec2.fault("RunInstances", "RequestLimitExceeded", status=503, times=1)
    out = asyncio.run(p.submit(submission(p.config, "t", 1)))
    assert len(out) == 1
    ec2.fault("DescribeInstances", "RequestLimitExceeded", status=503, times=-1)
    with pytest.raises(ThrottledError, match="throttled"):
        asyncio.run(p.observe([out[0].job_id], "cf-t-"))
    ec2.reset()
    asyncio.run(p.cancel([out[0].job_id], graceful=False))


def test_a_failure_mid_submission_leaves_nothing_behind(tmp_path: Path, ec2) -> None:
    class Flaky(Ec2Provider):
        calls = 0

        def run_instance(self, params):
            Flaky.calls += 1
            if Flaky.calls == 2:
                ec2.fault("RunInstances", "VcpuLimitExceeded", message="You have requested more vCPU capacity")
            return super().run_instance(params)

    cfg = make_config(tmp_path, ec2, "t")
    p = Flaky(cfg.sites[0], cfg.pilot, "t")
    with pytest.raises(QuotaExceeded):
        asyncio.run(p.submit(submission(p.config, "t", 3)))
    assert ec2.instances() == []  # the first one was terminated


def test_instances_ended_by_others_and_stopped_ones(tmp_path: Path, ec2) -> None:
    p = provider(tmp_path, ec2, spot=True, tags={"project": "physics"})
    ids = [s.job_id for s in asyncio.run(p.submit(submission(p.config, "t", 2)))]
    client = ec2.client()
    client.terminate_instances(InstanceIds=[ids[0]])  # an admin, or a spot interruption
    client.stop_instances(InstanceIds=[ids[1]])
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert obs.statuses[ids[0]].state is JobState.CANCELLED
    assert obs.statuses[ids[1]].state is JobState.CANCELLED  # and it was terminated
    assert ec2.instances() == []


@pytest.mark.parametrize(
    ("name", "code", "leave", "expected"),
    [
        ("pending", "", None, JobState.PENDING),
        ("running", "", None, JobState.RUNNING),
        ("terminated", "Client.InstanceInitiatedShutdown", None, JobState.COMPLETED),
        ("terminated", "Client.UserInitiatedShutdown", "graceful", JobState.COMPLETED),
        ("terminated", "Client.UserInitiatedShutdown", "now", JobState.CANCELLED),
        ("terminated", "Server.SpotInstanceTermination", None, JobState.CANCELLED),
        ("terminated", "Server.InsufficientInstanceCapacity", None, JobState.FAILED),
        ("shutting-down", "Server.InternalError", None, JobState.FAILED),
        ("rebooting?", "", None, JobState.UNKNOWN),
    ],
)
def test_state_table(name: str, code: str, leave: str | None, expected: JobState) -> None:
    inst = {"State": {"Name": name}, "StateReason": {"Code": code, "Message": code}, "Tags": []}
    if leave:
        inst["Tags"] = [{"Key": "cf-leave", "Value": leave}]
    assert ec2_state(inst)[0] is expected
