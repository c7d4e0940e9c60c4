"""The remote HTCondor provider: submit description and state mapping (no service), and pilots in
a real personal pool with a startd (marker `htcondor`, skipped when no HTCondor binaries exist)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.domain import PilotRequest
from campus_factory.errors import ConfigError, UnsafeValueError
from campus_factory.providers import build_provider
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.htcondor_remote import HTCondorRemoteProvider, job_status, submit_description
from campus_factory.transport.executor import LocalExecutor


def site_config(collector: str = "127.0.0.1:9618", **htcondor: object):
    cfg = parse_config(
        {
            "factory": {"name": "rc", "ledger_url": "sqlite://"},
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "remote",
                    "provider": "htcondor",
                    "walltime": "10m",
                    "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 10},
                    "batch": {"command_timeout": 20},
                    "htcondor": {"collector": collector, **htcondor},
                }
            ],
        }
    )
    return cfg, cfg.sites[0]


def submission(n: int) -> Submission:
    sub_id = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"remote-{sub_id}-{i}", 1, 100, 10, 0, 600.0) for i in range(n))
    return Submission(sub_id, f"cf-rc-{sub_id}", pilots)


def test_submit_description() -> None:
    _, site = site_config(requirements='OpSys == "LINUX"', submit={"accounting_group": "group_physics"})
    sub = submission(2)
    d = submit_description(site, sub, "/tmp/x.sh")
    assert d["+CampusFactoryTag"] == f'"{sub.tag}"' and d["batch_name"] == sub.tag
    assert d["environment"] == '"CAMPUS_FACTORY_PROC=$(Process)"'
    assert (d["request_cpus"], d["request_memory"], d["allowed_execute_duration"]) == ("1", "100MB", "600")
    assert d["requirements"] == 'OpSys == "LINUX"' and d["accounting_group"] == "group_physics"
    # refused by the config now (issue 15): a submit command name, one ClassAd expression
    with pytest.raises(ConfigError, match="submit command name"):
        site_config(submit={"bad key": "x"})
    with pytest.raises(ConfigError, match="requirements"):
        site_config(requirements="true\nqueue 100")
    _, site = site_config(submit={"+ProjectName": '"phys"', "MY.Extra": "1"})
    assert submit_description(site, sub, "/tmp/x.sh")["+ProjectName"] == '"phys"'
    unsafe = site.model_copy(update={"htcondor": site.htcondor.model_copy(update={"submit": {"bad key": "x"}})})
    with pytest.raises(UnsafeValueError):
        submit_description(unsafe, sub, "/tmp/x.sh")
    with pytest.raises(ConfigError, match="collector"):
        cfg, site = site_config(collector="")
        build_provider(site, cfg.pilot, LocalExecutor(), "rc")


def test_a_submit_error_never_carries_the_glidein_token() -> None:
    """A schedd that echoed the submitted script back in its error would leak the pilot's token."""
    from tests.providers.test_slurm_parsers import ScriptedExecutor

    from campus_factory.config import PoolOptions
    from campus_factory.errors import ProviderError, SubmitError
    from campus_factory.pilot.payload import GlideinBuilder

    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwIn0.c2lnbmF0dXJl"
    cfg, site = site_config()
    site = site.model_copy(update={"payload": "glidein"})
    ex = ScriptedExecutor((["condor_token_create"], (0, token + "\n", "")))
    builder = GlideinBuilder(PoolOptions(collector="cm:9618"), cfg.pilot, ex, "rc")
    provider = build_provider(site, cfg.pilot, ex, "rc", builder)
    assert isinstance(provider, HTCondorRemoteProvider)

    async def echoing_schedd(what: str, fn: object) -> object:
        raise ProviderError(f"remote: {what} failed: bad script ... {token} ...", site="remote")

    provider._call = echoing_schedd  # type: ignore[method-assign,assignment]
    with pytest.raises(SubmitError) as info:
        asyncio.run(provider.submit(submission(1)))
    assert token not in str(info.value) and "***" in str(info.value)


def test_job_status_mapping() -> None:
    base = {"ClusterId": 7, "ProcId": 1, "CampusFactoryTag": "cf-rc-0123456789", "TotalSubmitProcs": 3}
    assert job_status({**base, "JobStatus": 2}).state is JobState.RUNNING
    assert job_status({**base, "JobStatus": 2}).array_index == 1
    assert job_status({**base, "JobStatus": 2, "TotalSubmitProcs": 1}).array_index is None
    assert job_status({**base, "JobStatus": 5, "HoldReason": "x"}).reason == "x"
    assert job_status({**base, "JobStatus": 4, "ExitCode": 0}, True).state is JobState.COMPLETED
    assert job_status({**base, "JobStatus": 4, "ExitCode": 2}).state is JobState.FAILED
    st = job_status({**base, "JobStatus": 4, "ExitBySignal": True, "ExitSignal": 9})
    assert (st.state, st.exit_code) == (JobState.FAILED, 137)
    assert job_status({**base, "JobStatus": 3}).state is JobState.CANCELLED
    assert job_status({**base, "JobStatus": 42}).state is JobState.UNKNOWN


@pytest.mark.htcondor
def test_pilots_in_a_remote_pool_run_and_are_removed(remote_pool_client, tmp_path: Path) -> None:
    cfg, site = site_config(remote_pool_client.collector, schedd=remote_pool_client.schedd)
    provider = build_provider(site, cfg.pilot, LocalExecutor(), "rc")
    assert isinstance(provider, HTCondorRemoteProvider)
    sub = submission(2)

    async def main() -> float:
        started = time.monotonic()
        ids = [s.job_id for s in await provider.submit(sub)]
        cluster = ids[0].split(".")[0]
        assert ids == [f"{cluster}.0", f"{cluster}.1"]
        running_after = -1.0
        for _ in range(60):
            obs = await provider.observe(ids, "cf-rc-")
            if all(s.state is JobState.RUNNING for s in obs.statuses.values()):
                running_after = time.monotonic() - started
                break
            await asyncio.sleep(0.5)
        assert running_after > 0, obs.statuses
        assert sorted((s.job_id, s.array_index, s.tag) for s in obs.tagged if s.tag == sub.tag) == [
            (ids[0], 0, sub.tag),
            (ids[1], 1, sub.tag),
        ]
        assert all(r.ok for r in await provider.cancel(ids, graceful=True))
        for _ in range(60):
            obs = await provider.observe(ids, "cf-rc-")
            if all(s.from_accounting for s in obs.statuses.values()):
                break
            await asyncio.sleep(0.5)
        assert {s.state for s in obs.statuses.values()} == {JobState.CANCELLED}, obs.statuses
        assert [s for s in obs.tagged if s.tag == sub.tag] == []  # nothing left in the queue
        missing = await provider.observe(["99999.0"], "cf-rc-")
        assert missing.statuses["99999.0"].state is JobState.GONE
        return running_after

    took = asyncio.run(main())
    print(f"remote HTCondor: 2 pilots RUNNING {took:.1f} s after submit")
