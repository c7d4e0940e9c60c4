"""Glideins that join a real personal pool, run jobs and leave (marker `htcondor`).

The pool is started by the `condor_pool` fixture with the pool-side configuration that
`campus-factory condor-config` generates (pilots may only advertise with their IDTOKEN).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from campus_factory.config import Config, parse_config
from campus_factory.ledger import PilotState
from campus_factory.ledger.accounting import pilot_jobs
from campus_factory.loop.assemble import build_factory
from campus_factory.loop.factory import Factory
from campus_factory.pool.htcondor import HTCondorJobs

pytestmark = pytest.mark.htcondor

#: knobs for a glidein on the pool's own host (lab notes: no shared port, loopback, root)
SAME_HOST = {
    "NETWORK_INTERFACE": "127.0.0.1",
    "USE_SHARED_PORT": "False",
    "CONDOR_IDS": "0.0",
    "BASE_CGROUP": "",
    "USE_PID_NAMESPACES": "False",
    "ALLOW_DAEMON": "root@localhost",
}

JOB = """
executable = /bin/sleep
arguments = {seconds}
requirements = (TARGET.CampusFactorySite =?= "here") && {own}
request_memory = 100
should_transfer_files = YES
transfer_executable = false
job_lease_duration = 60
+CampusFactoryTest = "{tag}"
{extra}
queue 1
"""


def glidein_config(pool, tmp_path: Path, tag: str, provider: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(
        {
            "pool": {"collector": pool.collector, "job_constraint": f'CampusFactoryTest == "{tag}"'},
            "factory": {"name": tag, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "cycle_interval": 2},
            "pilot": {
                "payload": "glidein",
                "condor_locations": [str(pool.prefix)],
                "update_interval": 2,
                "retire_margin": 60,
                "token": {
                    "command": [f"{pool.prefix}/bin/condor_token_create"],
                    "environment": {"CONDOR_CONFIG": str(pool.config_file)},
                },
                "extra_config": SAME_HOST,
            },
            "sites": [
                {
                    "name": "here",
                    "provider": provider,
                    "idle_timeout": 15,
                    "walltime": "20m",
                    "slot": {"cpus": 1, "memory_mb": 512, "disk_mb": 0},
                    "limits": {"max_pilots": 2, "max_queued": 2, "max_submit_per_cycle": 1},
                    "batch": {"work_dir": str(tmp_path / "pilots"), "environment": env or {}, "term_margin": 60},
                }
            ],
        }
    )


def own_pilots(tag: str) -> str:
    """A job clause for the pilots of the factory ``tag`` only: a glidein another test started at
    the same site may still be in the pool (within its idle timeout) and would take the job. The
    planner's slot ad has no CampusFactoryName, hence ``undefined`` there."""
    return f'(TARGET.CampusFactoryName =?= undefined || TARGET.CampusFactoryName =?= "{tag}")'


def submit(pool, tag: str, seconds: int, extra: str = "") -> str:
    path = pool.submit_dir / f"{tag}-{uuid.uuid4().hex[:6]}.sub"
    path.write_text(JOB.format(seconds=seconds, tag=tag, extra=extra, own=own_pilots(tag)))
    path.chmod(0o644)
    out = pool.run("condor_submit", "-terse", str(path), user="nobody")
    return out.strip().split(" - ")[0].rsplit(".", 1)[0]  # "12.0 - 12.0" -> "12"


def job_field(pool, cluster: str, attr: str) -> str:
    out = pool.run("condor_q", cluster, "-af", attr, check=False).strip()
    if out:
        return out
    return pool.run("condor_history", cluster, "-af", attr, "-limit", "1", check=False).strip()


def cycles(f: Factory, until: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        asyncio.run(f.run_once())
        if until():
            return True
        time.sleep(1)
    return False


@pytest.fixture
def pool_env(condor_pool, monkeypatch):
    import htcondor2

    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    htcondor2.reload_config()
    return condor_pool


@pytest.mark.parametrize("provider", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_job_runs_on_a_glidein_that_joins_and_leaves(pool_env, tmp_path: Path, provider: str, request) -> None:
    pool = pool_env
    env = request.getfixturevalue("slurm_cluster").env if provider == "slurm" else None
    tag = "gl" + uuid.uuid4().hex[:6]
    f = build_factory(glidein_config(pool, tmp_path, tag, provider, env))
    t0 = time.time()
    job = submit(pool, tag, 3)
    cloud = submit(pool, tag, 3, '+CampusFactoryRoute = "cloud-only"')
    try:
        assert job_field(pool, cloud, "Requirements").endswith("false") or "IsCloudNode" in pool.run(
            "condor_q", cloud, "-l", check=False
        )
        assert cycles(f, lambda: job_field(pool, job, "JobStatus") == "4", 180), "the job never completed"
        assert job_field(pool, job, "ExitCode") == "0"
        assert "glidein-" in job_field(pool, job, "LastRemoteHost")
        # the cloud-only job matches no site here: no pilot is started for it, it never runs
        assert cycles(f, lambda: not f.ledger.live_pilots(tag), 120), "pilots did not leave after their idle timeout"
        assert job_field(pool, cloud, "JobStatus") == "1"
        assert job_field(pool, cloud, "NumJobStarts") in ("0", "undefined")
        pilots = f.ledger.pilots(factory=tag)
        joined = [p for p in pilots if any(t.to_state is PilotState.JOINED for t in f.ledger.transitions(p.pilot_id))]
        assert joined, [(p.pilot_id, p.state, p.reason) for p in pilots]
        for p in joined:
            assert p.state is PilotState.ENDED, (p.state, p.reason)
            assert p.started_at is not None and p.ended_at is not None and p.joined_at is not None
            assert (p.ended_at - p.started_at) * p.cpus > 0  # core-seconds delivered
        # the 3-second job's run is in the ledger, seen running or read from the history after,
        # and the history read names its pilot (from the glidein's slot name)
        gid = job_field(pool, job, "GlobalJobId")
        done = float(job_field(pool, job, "CompletionDate"))
        runs = [r for p in joined for r in pilot_jobs(f.ledger, p.pilot_id) if r.job_id == gid]
        assert len(runs) == 1 and runs[0].ended_at is not None and abs(runs[0].ended_at - done) <= 2, runs
        found = [r for r in HTCondorJobs(f.config.pool, tag).finished_runs(t0) if r.job.job_id == gid]
        assert [(r.job.pilot_id, r.ended_at) for r in found] == [(runs[0].pilot_id, done)]
    finally:
        pool.run("condor_rm", job, cloud, check=False)


def test_term_to_a_busy_glidein_requeues_its_job(pool_env, tmp_path: Path) -> None:
    pool = pool_env
    tag = "tm" + uuid.uuid4().hex[:6]
    f = build_factory(glidein_config(pool, tmp_path, tag, "local"))
    job = submit(pool, tag, 15)
    try:
        assert cycles(f, lambda: job_field(pool, job, "JobStatus") == "2", 120), "the job never started"
        (first,) = [p for p in f.ledger.live_pilots(tag) if p.job_id]
        results = asyncio.run(f.providers["here"].cancel([first.job_id], graceful=True))
        assert results[0].ok
        t0 = time.monotonic()
        while job_field(pool, job, "JobStatus") != "1" and time.monotonic() - t0 < 30:
            time.sleep(0.25)
        assert job_field(pool, job, "JobStatus") == "1", "the job was not re-queued"
        # another pilot takes it and it completes
        assert cycles(f, lambda: job_field(pool, job, "JobStatus") == "4", 180)
        assert int(job_field(pool, job, "NumJobStarts")) >= 2
        assert cycles(f, lambda: f.ledger.pilot(first.pilot_id).state is PilotState.ENDED, 120)
    finally:
        pool.run("condor_rm", job, check=False)
        for p in f.ledger.live_pilots(tag):
            if p.job_id:
                asyncio.run(f.providers["here"].cancel([p.job_id], graceful=False))
