"""Idle time from the last job's end, against a real personal pool (marker `htcondor`).

A glidein joins, runs one job longer than its site's idle timeout, and the job ends: the
factory must not take the pilot's time since joining for idleness (it once cancelled pilots
8-34 s after their last job with ``idle_timeout = 60 s``); it keeps the pilot until the idle
timeout has passed since the job's end, and then the pilot leaves.

A job queued while every glidein is busy runs on one of them when their jobs end, with no
factory running: the schedd hands it a finishing job's claim (any idle job of the same submitter
that matches the claimed slot, whatever its cluster or autocluster), before the glidein's idle
timeout can start. The planner's claim reuse counts on it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from tests.pilot.test_glidein_pool import cycles, glidein_config, job_field, pool_env, submit

from campus_factory.config import Config
from campus_factory.ledger import PilotState
from campus_factory.loop.assemble import build_factory

pytestmark = pytest.mark.htcondor
__all__ = ["pool_env"]  # the fixture, shared with test_glidein_pool

IDLE_TIMEOUT = 60


def history(f, pilot_id: str, pool, job: str) -> str:
    """The pilot's transitions and its job's times, readable in a failure message."""
    record = f.ledger.pilot(pilot_id)
    origin = record.created_at if record is not None else 0.0
    rows = [
        f"  +{t.at - origin:7.1f} s  {t.from_state.value if t.from_state else '-':>8} -> "
        f"{t.to_state.value:<8} {t.event:<10} {t.detail!r}"
        for t in f.ledger.transitions(pilot_id)
    ]
    times = {a: job_field(pool, job, a) for a in ("JobStartDate", "JobCurrentStartDate", "CompletionDate")}
    rel = {a: (f"+{float(v) - origin:.1f} s" if v.replace(".", "", 1).isdigit() else v) for a, v in times.items()}
    state = record.state.value if record is not None else None
    joined = f"+{record.joined_at - origin:.1f} s" if record and record.joined_at else None
    head = f"pilot {pilot_id} ({state}, joined {joined}; times from its creation); job {job}: {rel}"
    return "\n".join([head, *rows])


def test_a_glidein_is_kept_idle_timeout_after_its_last_job_not_after_joining(pool_env, tmp_path: Path) -> None:
    pool = pool_env
    tag = "it" + uuid.uuid4().hex[:6]
    cfg = glidein_config(pool, tmp_path, tag, "local")
    site = cfg.sites[0].model_copy(update={"idle_timeout": float(IDLE_TIMEOUT)})
    f = build_factory(cfg.model_copy(update={"sites": (site,)}))
    # busy for longer than the idle timeout, and only on this test's own pilot: a glidein of an
    # earlier test at the same site may still be in the pool and would take the job first (the
    # planner's offline slot ad has no CampusFactoryName, so the job still plans a pilot)
    name = f'(TARGET.CampusFactoryName =?= undefined || TARGET.CampusFactoryName =?= "{tag}")'
    own = f'requirements = (TARGET.CampusFactorySite =?= "here") && {name}'
    job = submit(pool, tag, IDLE_TIMEOUT + 15, own)
    try:
        assert cycles(f, lambda: job_field(pool, job, "JobStatus") == "4", 300), "the job never completed"
        ended = float(job_field(pool, job, "CompletionDate"))
        pilots = [p for p in f.ledger.pilots(factory=tag) if p.joined_at is not None]
        assert pilots, "no pilot joined"
        (pilot,) = pilots
        ran_on = job_field(pool, job, "LastRemoteHost")
        assert f"glidein-{pilot.pilot_id}" in ran_on, (ran_on, history(f, pilot.pilot_id, pool, job))
        # joined longer ago than the idle timeout
        assert ended - pilot.joined_at >= IDLE_TIMEOUT, history(f, pilot.pilot_id, pool, job)
        # for half the idle timeout after the job's end the factory keeps the pilot
        while time.time() < ended + IDLE_TIMEOUT / 2:
            asyncio.run(f.run_once())
            record = f.ledger.pilot(pilot.pilot_id)
            assert record is not None and record.state is PilotState.JOINED, history(f, pilot.pilot_id, pool, job)
            time.sleep(1)
        # then it leaves: by itself (STARTD_NOCLAIM_SHUTDOWN) or cancelled by the factory
        assert cycles(f, lambda: not f.ledger.live_pilots(tag), 180), "the idle pilot never left"
        for t in f.ledger.transitions(pilot.pilot_id):
            if t.detail.startswith("idle for"):  # the factory's cancel, if it came first
                assert t.at >= ended + IDLE_TIMEOUT - 5, history(f, pilot.pilot_id, pool, job)
    finally:
        pool.run("condor_rm", job, check=False)


def _fit(cfg: Config) -> Config:
    """The test site with pilots sized to their jobs, as at a batch site (fill-only START)."""
    site = cfg.sites[0]
    site = site.model_copy(update={"slot": site.slot.model_copy(update={"sizing": "fit"})})
    return cfg.model_copy(update={"sites": (site,)})


@pytest.mark.parametrize("provider", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_a_job_queued_behind_busy_glideins_runs_on_one_of_them_with_no_factory(
    pool_env, tmp_path: Path, provider: str, request
) -> None:
    pool = pool_env
    env = request.getfixturevalue("slurm_cluster").env if provider == "slurm" else None
    tag = "cr" + uuid.uuid4().hex[:6]
    cfg = _fit(glidein_config(pool, tmp_path, tag, provider, env))
    assert cfg.sites[0].sizing == "fit"
    f = build_factory(cfg)
    busy = [submit(pool, tag, 30) for _ in range(2)]  # one per pilot (max_pilots 2)
    queued = ""
    try:
        assert cycles(f, lambda: all(job_field(pool, c, "JobStatus") == "2" for c in busy), 240), "not both running"
        f.ledger.close()  # the factory stops: no new pilot for the job queued now
        queued = submit(pool, tag, 3)
        deadline = time.monotonic() + 300
        while not all(job_field(pool, c, "JobStatus") == "4" for c in (*busy, queued)):
            if time.monotonic() > deadline:
                why = pool.run("condor_q", "-better-analyze", queued, check=False)
                slots = pool.run("condor_status", "-af", "Name", "State", "Activity", "Cpus", "Memory", check=False)
                pytest.fail(f"the queued job never completed:\n{why[-3000:]}\n{slots[-2000:]}")
            time.sleep(1)
        hosts = {job_field(pool, c, "LastRemoteHost").split("@")[1] for c in busy}
        ran_on = job_field(pool, queued, "LastRemoteHost")
        assert len(hosts) == 2 and ran_on.split("@")[1] in hosts, (ran_on, hosts)
        # after a busy job ended (on its claim or by a new match), and only once
        first_end = min(float(job_field(pool, c, "CompletionDate")) for c in busy)
        assert float(job_field(pool, queued, "JobCurrentStartDate")) >= first_end - 1
        assert job_field(pool, queued, "NumJobStarts") == "1"
        # then both pilots leave by their idle timeout; a new factory on the ledger sees them gone
        f = build_factory(cfg)
        assert cycles(f, lambda: not f.ledger.live_pilots(tag), 180), "the idle pilots never left"
    finally:
        pool.run("condor_rm", *busy, *([queued] if queued else []), check=False)
        f.ledger.close()
