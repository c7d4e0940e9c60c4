"""Offline ads in a real collector (marker `htcondor`): published, matched by the negotiator,
read back as demand, and withdrawn for good."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.planner.inputs import site_spec
from campus_factory.pool.offline import OfflineAdPublisher

pytestmark = pytest.mark.htcondor

JOB = """executable = /bin/sleep
arguments = 1
request_memory = 100
requirements = TARGET.HasBeta =?= true
should_transfer_files = YES
transfer_executable = false
queue 1
"""


@pytest.fixture
def factory_token(condor_pool, tmp_path: Path, monkeypatch):
    """The factory's own token (ADVERTISE_STARTD, READ) in its token directory, as an admin gives it."""
    import htcondor2

    tokens = tmp_path / "tokens.d"
    tokens.mkdir(mode=0o700)
    token = condor_pool.token("pilot-offline@campus-factory", "ADVERTISE_STARTD", "READ")
    (tokens / "factory").write_text(token)
    (tokens / "factory").chmod(0o600)
    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    htcondor2.reload_config()
    htcondor2.param["SEC_TOKEN_DIRECTORY"] = str(tokens)
    htcondor2.param["SEC_CLIENT_AUTHENTICATION_METHODS"] = "IDTOKENS"
    yield condor_pool
    htcondor2.reload_config()


def test_offline_ad_is_matched_read_back_and_withdrawn(factory_token) -> None:
    pool = factory_token
    cfg = parse_config(
        {
            "factory": {"name": "off" + str(os.getpid())},
            "pool": {"collector": pool.collector, "offline_ads": True},
            "sites": [
                {
                    "name": "beta",
                    "provider": "fake",
                    "slot": {"cpus": 2, "memory_mb": 2000, "attributes": {"HasBeta": True}},
                }
            ],
        }
    )
    publisher = OfflineAdPublisher(cfg.pool, cfg.factory.name)
    ad = site_spec(cfg.sites[0]).slot_ad
    assert ad is not None
    publisher.publish({"beta": ad})
    names = pool.run("condor_status", "-const", "Offline =?= true", "-af", "Name", "CondorVersion").strip()
    assert names.startswith(f"offline-{cfg.factory.name}-beta $CondorVersion:")
    sub = pool.submit_dir / f"off-{os.getpid()}.sub"
    sub.write_text(JOB)
    sub.chmod(0o644)
    cluster = pool.run("condor_submit", "-terse", str(sub), user="nobody").split(".")[0]
    try:
        deadline = time.monotonic() + 60
        matched: dict[str, int] = {}
        while time.monotonic() < deadline and not matched:
            matched = publisher.matched(time.time())
            time.sleep(1)
        assert matched == {"beta": 1}
        assert pool.run("condor_q", cluster, "-af", "JobStatus").strip() == "1"  # the job stays idle
        publisher.withdraw(["beta"])
        assert pool.run("condor_status", "-const", "Offline =?= true", "-af", "Name").strip() == ""
        assert publisher.matched(time.time()) == {}
    finally:
        pool.run("condor_rm", cluster, check=False)
