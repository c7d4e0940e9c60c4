"""`campus-factory report` against HTCondor's and Slurm's own records (markers htcondor, slurm).

Glideins at the test Slurm cluster join a personal pool and run two 90-second jobs (one per
pilot); the factory is stopped while they run (the jobs end, and the pilots leave, while it is
down) and a new factory process is started on the same ledger. The ledger's accounting must then agree
within 2 % with `condor_history` (core-seconds used: each job's run on a pilot) and with Slurm's
accounting (`sacct -c`: core-seconds delivered, each pilot's start to end).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from tests.pilot.test_glidein_pool import cycles, glidein_config, job_field, submit

from campus_factory.ledger.accounting import account, open_job_runs
from campus_factory.loop.assemble import build_factory

pytestmark = [pytest.mark.htcondor, pytest.mark.slurm]

JOBS = 2  # one per pilot (max_pilots 2): each run is seen running before the stop
SECONDS = 90


@pytest.fixture
def pool(condor_pool, monkeypatch):
    """The personal pool, with this process's HTCondor client pointed at it."""
    import htcondor2

    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    htcondor2.reload_config()
    return condor_pool


def _history_core_seconds(pool, clusters: list[str]) -> float:
    total = 0.0
    for c in clusters:
        start = float(job_field(pool, c, "JobCurrentStartDate"))
        end = float(job_field(pool, c, "CompletionDate"))
        total += (end - start) * int(job_field(pool, c, "RequestCpus"))
    return total


def _sacct_core_seconds(cluster, job_ids: list[str], cpus: int) -> float:
    from campus_factory.providers.slurm import slurm_time

    out = subprocess.run(
        ["sacct", "-c", "-X", "-n", "-P", "-o", "JobID,Start,End", "-j", ",".join(job_ids)],
        env={**os.environ, **cluster.env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    total = 0.0
    for line in out.splitlines():
        job, start, end = line.split("|")
        s, e = slurm_time(start), slurm_time(end)
        if job in job_ids and s is not None and e is not None:
            total += (e - s) * cpus
    return total


def test_report_matches_condor_history_and_slurm_accounting_across_a_restart(
    pool, slurm_cluster, tmp_path: Path
) -> None:
    tag = "ra" + uuid.uuid4().hex[:6]
    cfg = glidein_config(pool, tmp_path, tag, "slurm", slurm_cluster.env)
    t0 = time.time()
    f = build_factory(cfg)
    clusters = [submit(pool, tag, SECONDS) for _ in range(JOBS)]
    try:
        assert cycles(f, lambda: all(job_field(pool, c, "JobStatus") == "2" for c in clusters), 240)
        assert cycles(f, lambda: len(open_job_runs(f.ledger, tag)) == JOBS, 60), "runs never recorded"
        f.ledger.close()  # the factory stops while the jobs run
        deadline = time.monotonic() + 600
        while not all(job_field(pool, c, "JobStatus") == "4" for c in clusters):
            if time.monotonic() > deadline:
                why = pool.run("condor_q", "-better-analyze", clusters[-1], check=False)
                slots = pool.run("condor_status", "-af", "Name", "State", "Activity", "Start", check=False)
                pytest.fail(f"the jobs never completed:\n{why[-3000:]}\n{slots[-2000:]}")
            time.sleep(5)
        time.sleep(30)  # the idle pilots leave (idle_timeout 15 s) while the factory is down
        f = build_factory(cfg)  # a new process on the same ledger
        assert cycles(f, lambda: not f.ledger.live_pilots(tag), 300), "pilots did not leave"
        now = time.time()
        acct = account(f.ledger, since=t0 - 60, until=now + 60, now=now, factory=tag)
        used = acct.total.used_core_hours * 3600
        delivered = acct.total.delivered_core_hours * 3600
        history = _history_core_seconds(pool, clusters)
        assert acct.total.job_runs == JOBS
        assert abs(used - history) <= 0.02 * history, (used, history)
        pilots = [p for p in f.ledger.pilots(factory=tag) if p.job_id and p.started_at is not None]
        batch = _sacct_core_seconds(slurm_cluster, [p.job_id or "" for p in pilots], cfg.sites[0].slot.cpus)
        assert abs(delivered - batch) <= 0.02 * batch, (delivered, batch)
    finally:
        pool.run("condor_rm", *clusters, check=False)
        f.ledger.close()
