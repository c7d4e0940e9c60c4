"""The pilots' START expression enforces a site's allowed owners (marker `htcondor`): a glidein of a
site with ``allowed_owners = ["nobody"]`` joins the real pool and runs nobody's job; the job of
another local user, matching the site in every other way, never runs on it, and the planner
reports that job as matching no site (the site's START)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest
from tests.pilot.test_glidein_pool import cycles, glidein_config, job_field, own_pilots, submit

from campus_factory.ledger import PilotState
from campus_factory.loop.assemble import build_factory

pytestmark = pytest.mark.htcondor

OTHER = "cfmallory"
DONE = (PilotState.ENDED, PilotState.FAILED, PilotState.CANCELLED, PilotState.LOST)


@pytest.fixture(scope="module")
def other_user() -> str:
    """A second local user, created when missing (root)."""
    if subprocess.run(["getent", "passwd", OTHER], capture_output=True).returncode != 0:
        proc = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.fail(f"cannot create the local user {OTHER}: {proc.stderr}")
    return OTHER


def submit_as(pool, user: str, tag: str) -> str:
    path = pool.submit_dir / f"{tag}-{user}.sub"
    path.write_text(
        "executable = /bin/sleep\narguments = 2\n"
        f'requirements = (TARGET.CampusFactorySite =?= "here") && {own_pilots(tag)}\n'
        f'request_memory = 100\nshould_transfer_files = YES\n+CampusFactoryTest = "{tag}"\nqueue 1\n'
    )
    path.chmod(0o644)
    return pool.run("condor_submit", "-terse", str(path), user=user).strip().split(" - ")[0].rsplit(".", 1)[0]


def test_a_disallowed_owner_never_runs_on_the_pilots(condor_pool, other_user: str, tmp_path: Path, monkeypatch) -> None:
    import htcondor2

    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    htcondor2.reload_config()
    tag = "ow" + uuid.uuid4().hex[:6]
    cfg = glidein_config(condor_pool, tmp_path, tag, "local")
    site = cfg.sites[0].model_copy(update={"allowed_owners": ("nobody",)})
    cfg = cfg.model_copy(update={"sites": (site,)})
    f = build_factory(cfg)
    theirs = submit_as(condor_pool, other_user, tag)
    ours = submit(condor_pool, tag, 2)
    try:
        assert cycles(f, lambda: job_field(condor_pool, ours, "JobStatus") == "4", 180), "nobody's job never ran"
        # the pilot that ran it is still in the pool, idle: its START names the allowed owner
        start = condor_pool.run("condor_status", "-const", f'CampusFactoryName == "{tag}"', "-af:r", "Start")
        assert start.strip().startswith('(member(TARGET.Owner,{ "nobody" }))'), start
        # until its idle timeout the negotiator offers it the other job, which START refuses
        assert cycles(f, lambda: all(p.state in DONE for p in f.ledger.pilots(factory=tag)), 120)
        assert [p for p in f.ledger.pilots(factory=tag) if p.joined_at is not None], "no pilot ever joined"
        assert job_field(condor_pool, theirs, "Owner") == other_user
        assert job_field(condor_pool, theirs, "JobStatus") == "1"
        assert job_field(condor_pool, theirs, "NumJobStarts") in ("0", "undefined")
        # and the planner says why: the site's START is false for it
        report = asyncio.run(f.run_once(dry_run=True))
        assert report.plan is not None
        owners = {g.group_id: g.owner for g in f.demand.idle_groups()}
        theirs_plan = [g for g in report.plan.groups if owners.get(g.group_id) == other_user]
        assert theirs_plan and theirs_plan[0].site is None and theirs_plan[0].matched == ()
        assert "site START false" in theirs_plan[0].reason, theirs_plan[0].reason
    finally:
        condor_pool.run("condor_rm", ours, theirs, check=False)
        for p in f.ledger.live_pilots(tag):
            if p.job_id:
                asyncio.run(f.providers["here"].cancel([p.job_id], graceful=False))
