"""The OpenStack provider against mimic (marker `openstack`): build delay, ERROR, quota errors."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from tests.providers.clouds.conftest import cloud_submission, openstack_config

from campus_factory.errors import QuotaExceeded, SubmitError, ThrottledError
from campus_factory.providers.base import JobState
from campus_factory.providers.openstack import OpenStackProvider

pytestmark = pytest.mark.openstack


make_config = openstack_config
submission = cloud_submission


def provider(tmp_path: Path, nova, name: str = "t") -> OpenStackProvider:
    cfg = make_config(tmp_path, nova, name)
    return OpenStackProvider(cfg.sites[0], cfg.pilot, name)


def test_servers_build_run_and_leave(tmp_path: Path, nova) -> None:
    nova.behave("build", {"duration": 30})
    p = provider(tmp_path, nova)
    sub = submission(p.config, "t", 2)
    ids = [s.job_id for s in asyncio.run(p.submit(sub))]
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert {s.state for s in obs.statuses.values()} == {JobState.PENDING}
    assert sorted((s.tag, s.array_index) for s in obs.tagged) == [(sub.tag, 0), (sub.tag, 1)]
    server = {s["id"]: s for s in nova.servers()}[ids[0]]
    assert server["name"] == f"{sub.tag}-p0" and server["flavor"]["id"] == "2"
    assert server["metadata"]["cf-pilot"] == sub.pilots[0].pilot_id and server["metadata"]["cf-site"] == "os1"
    nova.tick(31)
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert {s.state for s in obs.statuses.values()} == {JobState.RUNNING}
    # the pilot of ids[0] ends by itself (its VM powers off): COMPLETED, and deleted
    nova.set_status(ids[0], "SHUTOFF")
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert obs.statuses[ids[0]].state is JobState.COMPLETED
    assert ids[0] not in {s["id"] for s in nova.servers()}
    res = asyncio.run(p.cancel([ids[1], "no-such-server"], graceful=False))
    assert all(r.ok for r in res), res
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert obs.statuses[ids[1]].state is JobState.CANCELLED
    assert nova.servers() == []


def test_user_data_reaches_the_server(tmp_path: Path, nova) -> None:
    p = provider(tmp_path, nova)
    sub = submission(p.config, "t", 1)
    sent: dict[str, Any] = {}
    compute = p.connection().compute
    real = compute.create_server

    def spy(**kw: Any) -> Any:
        sent.update(kw)
        return real(**kw)

    compute.create_server = spy
    [pilot] = asyncio.run(p.submit(sub))
    text = base64.b64decode(sent["user_data"]).decode()
    assert text.startswith("#cloud-config") and "IsCloudNode = True" in text
    assert sent["name"] == sub.tag and sent["metadata"]["cf-tag"] == sub.tag and "cf-index" not in sent["metadata"]
    asyncio.run(p.cancel([pilot.job_id]))


def test_error_state_is_a_failed_pilot_and_is_deleted(tmp_path: Path, nova) -> None:
    nova.behave("error")
    p = provider(tmp_path, nova)
    ids = [s.job_id for s in asyncio.run(p.submit(submission(p.config, "t", 1)))]
    obs = asyncio.run(p.observe(ids, "cf-t-"))
    assert obs.statuses[ids[0]].state is JobState.FAILED
    assert nova.servers() == []


def test_quota_and_rate_limit_errors(tmp_path: Path, nova) -> None:
    p = provider(tmp_path, nova)
    nova.behave(
        "fail",
        {"code": 403, "type": "forbidden", "message": "Quota exceeded for instances: Requested 1, but already used 10"},
    )
    with pytest.raises(QuotaExceeded, match="quota"):
        asyncio.run(p.submit(submission(p.config, "t", 1)))
    nova.clear()
    nova.behave("fail", {"code": 413, "type": "overLimit", "message": "Rate limit exceeded: retry after 30 s"})
    with pytest.raises(ThrottledError, match="throttled"):
        asyncio.run(p.submit(submission(p.config, "t", 1)))
    nova.clear()
    nova.behave("fail", {"code": 400, "type": "badRequest", "message": "Invalid imageRef provided."})
    with pytest.raises(SubmitError, match="imageRef"):
        asyncio.run(p.submit(submission(p.config, "t", 1)))
    # a quota error on the second server of a submission: the first is deleted
    nova.clear()
    nova.behave("fail", {"code": 403, "type": "forbidden", "message": "Quota exceeded for cores"}, server_name=".*-p1$")
    with pytest.raises(QuotaExceeded):
        asyncio.run(p.submit(submission(p.config, "t", 2)))
    assert nova.servers() == []


TOKEN = "eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ.eyJzdWIiOiJwaWxvdCJ9.c2lnbmF0dXJl"


def glidein_provider(tmp_path: Path, nova, executor: Any) -> Any:
    """The site overrides the campus's command payload with the glidein (build_provider applies it)."""
    from campus_factory.config import PoolOptions
    from campus_factory.pilot.payload import GlideinBuilder
    from campus_factory.providers import build_provider

    cfg = make_config(tmp_path, nova, "t")
    site = cfg.sites[0].model_copy(update={"payload": "glidein"})
    builder = GlideinBuilder(PoolOptions(collector="cm.campus.edu:9618"), cfg.pilot, executor, "t")
    return build_provider(site, cfg.pilot, executor, "t", builder)


def test_glidein_payload_puts_one_token_and_the_glidein_in_each_server(tmp_path: Path, nova) -> None:
    from tests.providers.test_slurm_parsers import ScriptedExecutor

    ex = ScriptedExecutor((["condor_token_create"], (0, TOKEN + "\n", "")))
    p = glidein_provider(tmp_path, nova, ex)
    assert p.pilot.payload == "glidein"
    sent: list[dict[str, Any]] = []
    compute = p.connection().compute
    real = compute.create_server
    compute.create_server = lambda **kw: (sent.append(kw), real(**kw))[1]
    sub = submission(p.config, "t", 2)
    ids = [s.job_id for s in asyncio.run(p.submit(sub))]
    assert len(ex.calls) == 1  # one token per submission
    assert "-identity" in ex.calls[0].argv and "pilot-os1@campus-factory" in ex.calls[0].argv
    assert len(sent) == 2
    for kw, request in zip(sent, sub.pilots, strict=True):
        text = base64.b64decode(kw["user_data"]).decode()
        assert TOKEN in text and "COLLECTOR_HOST = cm.campus.edu:9618" in text
        assert "IsCloudNode = True" in text and f"CAMPUS_FACTORY_PILOT_ID={request.pilot_id}" in text
    asyncio.run(p.cancel(ids, graceful=False))


def test_glidein_token_failure_starts_no_server(tmp_path: Path, nova) -> None:
    from tests.providers.test_slurm_parsers import ScriptedExecutor

    from campus_factory.errors import ProviderError

    ex = ScriptedExecutor((["condor_token_create"], (1, "", "ERROR: no signing key")))
    p = glidein_provider(tmp_path, nova, ex)
    with pytest.raises(ProviderError, match=r"cannot mint a pilot token.*exited 1"):
        asyncio.run(p.submit(submission(p.config, "t", 1)))
    assert nova.servers() == []
