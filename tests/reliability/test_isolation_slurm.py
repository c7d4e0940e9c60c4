"""Fault isolation with real Slurm (marker `slurm`): the slurmctld of one site is stopped in the
middle of a cycle, between its observation and its submission. The other site (the session's
Slurm cluster) keeps getting a pilot every cycle, on time; the broken site reports errors, its
failed submission is recorded, it backs off and gets no job while broken; once its slurmctld is
back it is served again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from campus_factory.config import Config, parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import CycleReport, Factory
from campus_factory.providers.slurm import SlurmProvider
from campus_factory.transport.executor import CommandResult, LocalExecutor

pytestmark = pytest.mark.slurm

TIMEOUT = 2.0  # command_timeout of each site: a command to a dead slurmctld takes 9 s to fail
BOUND = TIMEOUT + 2.5  # a cycle waits one command timeout of the bad site at most (+ slack)


def site(name: str, env: dict[str, str], tmp_path: Path, max_pilots: int) -> dict[str, object]:
    return {
        "name": name,
        "provider": "slurm",
        "walltime": "10m",
        "idle_timeout": "10m",
        "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0},
        "limits": {"max_pilots": max_pilots, "max_queued": max_pilots, "max_submit_per_cycle": 1},
        "batch": {"environment": env, "work_dir": str(tmp_path / name), "command_timeout": TIMEOUT},
        "isolation": {"backoff_after": 1, "backoff_base": 1, "backoff_max": 2},
    }


def make_config(tmp_path: Path, name: str, good_env: dict[str, str], bad_env: dict[str, str]) -> Config:
    return parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "submission_grace": 60},
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [site("good", good_env, tmp_path, 12), site("bad", bad_env, tmp_path, 4)],
        }
    )


def for_site(name: str, n: int) -> JobGroup:
    return JobGroup(f"g-{name}", n, cpus=1, memory_mb=100, disk_mb=0, requirements=f'CampusFactorySite == "{name}"')


class StopsControllerOnSubmit(LocalExecutor):
    """The real executor; armed, it stops the spare cluster's slurmctld just before an sbatch there."""

    def __init__(self, spare) -> None:
        self.spare = spare
        self.armed = False
        self.stop_took = 0.0

    async def run(self, argv, *, timeout, stdin=None, env=None) -> CommandResult:  # type: ignore[override]
        if self.armed and argv[0] == "sbatch" and (env or {}).get("SLURM_CONF") == self.spare.conf:
            self.armed = False
            t0 = time.monotonic()
            await asyncio.to_thread(self.spare.stop_controller)
            self.stop_took = time.monotonic() - t0
        return await super().run(argv, timeout=timeout, stdin=stdin, env=env)


def jobs_at(f: Factory, site_name: str) -> int:
    return sum(1 for p in f.ledger.pilots(factory=f.name, site=site_name, limit=1000) if p.job_id)


def count(f: Factory, site_name: str) -> int:
    return len(f.ledger.pilots(factory=f.name, site=site_name, limit=1000))


def cycle(f: Factory) -> tuple[CycleReport, float]:
    t0 = time.monotonic()
    report = asyncio.run(f.run_once())
    return report, time.monotonic() - t0


def test_a_site_whose_slurmctld_dies_is_isolated_and_served_again(slurm_cluster, spare_slurm, tmp_path: Path) -> None:
    name = "iso" + uuid.uuid4().hex[:6]
    cfg = make_config(tmp_path, name, slurm_cluster.env, spare_slurm.env)
    executor = StopsControllerOnSubmit(spare_slurm)
    providers = {s.name: SlurmProvider(s, cfg.pilot, executor, name) for s in cfg.sites}
    demand = StaticDemand([for_site("good", 40), for_site("bad", 40)])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, providers)
    try:
        # healthy: both sites get a pilot each cycle
        for _ in range(2):
            before = (jobs_at(f, "good"), jobs_at(f, "bad"))
            report, took = cycle(f)
            assert report.errors == [] and report.submitted == 2, report
            assert (jobs_at(f, "good"), jobs_at(f, "bad")) == (before[0] + 1, before[1] + 1)
        assert len(spare_slurm.jobs()) == 2
        bad_jobs = jobs_at(f, "bad")

        # slurmctld dies after the bad site was observed, before its sbatch: that submission fails
        executor.armed = True
        good_before = jobs_at(f, "good")
        report, took = cycle(f)
        assert not executor.armed and not spare_slurm.controller_up()
        assert jobs_at(f, "good") == good_before + 1 and report.submitted == 1, report.errors
        assert [e for e in report.errors if e.startswith("bad: act failed")], report.errors
        assert took - executor.stop_took < BOUND, f"{took:.1f} s"
        failed = [p for p in f.ledger.pilots(factory=name, site="bad", limit=1000) if p.job_id is None]
        assert [p.state.value for p in failed] == ["failed"], failed  # recorded, never lost

        for i in range(3):
            good_before = jobs_at(f, "good")
            report, took = cycle(f)
            # the good site is served every cycle, on time
            assert jobs_at(f, "good") == good_before + 1, (i, report.errors)
            assert took < BOUND, f"cycle {i} took {took:.1f} s"
            assert not any(e.startswith("good") for e in report.errors), report.errors
            # the bad site shows its error and gets nothing
            bad = [e for e in report.errors if e.startswith("bad:")]
            assert bad and all("timed out" in e or "controller" in e for e in bad), report.errors
            assert report.plan is not None and report.plan.site("bad").submit == 0
            assert report.plan.site("bad").health in ("unhealthy", "backoff"), report.plan.site("bad")
            assert jobs_at(f, "bad") == bad_jobs and count(f, "bad") == bad_jobs + 1  # no new record

        spare_slurm.start_controller()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and jobs_at(f, "bad") == bad_jobs:
            good_before = jobs_at(f, "good")
            report, took = cycle(f)
            assert took < BOUND, f"{took:.1f} s: {report.errors}"
            if good_before < 12:
                assert jobs_at(f, "good") == good_before + 1, report.errors
            if jobs_at(f, "bad") == bad_jobs:
                time.sleep(0.5)
        assert jobs_at(f, "bad") > bad_jobs, f"not served again once slurmctld was back: {report.errors} {report.plan}"
        assert report.errors == []
        # after the backoff the site is probed with one pilot; its pilots from before the outage are intact
        assert jobs_at(f, "bad") == bad_jobs + 1
        assert len(spare_slurm.jobs()) == jobs_at(f, "bad")
        live = {p.state.value for p in f.ledger.pilots(factory=name, site="bad", limit=1000) if p.job_id}
        assert live <= {"queued", "running"}, live
    finally:
        executor.armed = False
        for s, cluster_env in (("good", slurm_cluster.env), ("bad", spare_slurm.env)):
            jobs = [p.job_id for p in f.ledger.pilots(factory=name, site=s, limit=1000) if p.job_id]
            if jobs:
                subprocess.run(["scancel", *jobs], env={**os.environ, **cluster_env}, capture_output=True, timeout=30)
