"""Batch providers, and the factory through them, against real schedulers: one body per
behaviour, run for Son of Grid Engine (marker `sge`) and for Slurm's PBS wrappers in front of the
Slurm test cluster (marker `pbs`). What differs between the two is declared in :data:`BACKENDS`.
(Slurm itself has its own module: its arrays, accounting and signals go further.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.providers.conftest import SgeCluster

from campus_factory.config import Config, parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.providers import build_provider
from campus_factory.providers._batch import BatchProvider
from campus_factory.providers.base import JobState, Observation, Submission
from campus_factory.providers.pbs import SlurmPbsProvider
from campus_factory.providers.sge import SgeProvider
from campus_factory.transport.executor import LocalExecutor


@dataclass(frozen=True)
class Backend:
    """What one scheduler does differently, for the shared test bodies."""

    fixture: str  # the service fixture
    site: str
    provider: type[BatchProvider]
    site_table: Callable[[Any], dict[str, Any]]  # the site's provider and batch keys, for the service
    pilots: int  # pilots in one submission (the PBS wrappers make one job each)
    ids_ok: Callable[[list[str]], bool]  # the shape of the job ids of one submission
    log: Callable[[Submission, list[str], int], str]  # the output file of pilot i
    ended: JobState  # how a cancelled running pilot is reported
    ended_exit_code: int | None
    from_accounting: bool  # whether ended jobs are read from accounting (else from the queue)
    leftover: Callable[[Any, str], list[str]]  # the scheduler's own listing of live jobs named so


def _sge_ids(ids: list[str]) -> bool:
    number = ids[0].split(".")[0]
    return ids == [f"{number}.{i + 1}" for i in range(len(ids))]


BACKENDS = {
    "sge": Backend(
        fixture="sge_cluster",
        site="gridengine",
        provider=SgeProvider,
        site_table=lambda sge: {"provider": "sge", "batch": {"environment": sge.env}},
        pilots=3,
        ids_ok=_sge_ids,
        log=lambda sub, ids, i: f"{sub.tag}.o{ids[0].split('.')[0]}.{i + 1}",  # SGE_TASK_ID counts from 1
        ended=JobState.CANCELLED,  # qacct: killed by qdel
        ended_exit_code=137,
        from_accounting=True,  # a job leaves qstat at once
        leftover=lambda sge, tag: [ln for ln in sge.qstat().splitlines() if tag[:10] in ln],  # live jobs only
    ),
    "pbs": Backend(
        fixture="pbs_commands",
        site="torque",
        provider=SlurmPbsProvider,
        site_table=lambda pbs: {
            "provider": "pbs",
            "batch": {"pbs_flavor": "slurm", "bin_dir": pbs.bin_dir, "environment": pbs.env},
        },
        pilots=2,
        ids_ok=lambda ids: all(j.isdigit() for j in ids) and len(set(ids)) == len(ids),
        log=lambda sub, ids, i: f"{sub.tag}-{ids[i]}.out",
        ended=JobState.COMPLETED,  # the wrapper shows every ended job as "C" with no exit status
        ended_exit_code=None,
        from_accounting=False,  # the wrappers keep no history; "C" stays for Slurm's MinJobAge
        leftover=lambda pbs, tag: [
            ln for ln in pbs.cluster.squeue() if tag in ln and ln.split("|")[1] in ("RUNNING", "PENDING", "COMPLETING")
        ],
    ),
}

pytestmark = pytest.mark.parametrize(
    "backend",
    [pytest.param("sge", marks=pytest.mark.sge), pytest.param("pbs", marks=pytest.mark.pbs)],
)


@pytest.fixture
def setup(backend: str, request: pytest.FixtureRequest) -> Iterator[tuple[Backend, Any]]:
    """The backend and its service; afterwards no job of the test is left, passed or failed."""
    case = BACKENDS[backend]
    service = request.getfixturevalue(case.fixture)
    yield case, service
    if isinstance(service, SgeCluster):
        service.delete_all_jobs()
    else:
        service.cluster.cancel_all_jobs()


def make_config(tmp_path: Path, case: Backend, service: Any, name: str, command: list[str] | None = None) -> Config:
    table = case.site_table(service)
    batch = {**table.pop("batch"), "work_dir": str(tmp_path / "pilots"), "command_timeout": 20}
    return parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "cycle_interval": 1},
            "pilot": {"payload": "command", "command": command or ["sleep", "infinity"]},
            "sites": [
                {
                    "name": case.site,
                    "walltime": "10m",
                    "idle_timeout": 2,
                    "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0},
                    "limits": {"max_pilots": 3, "max_queued": 3, "max_submit_per_cycle": 3},
                    "batch": batch,
                    **table,
                }
            ],
        }
    )


def provider(cfg: Config, case: Backend) -> BatchProvider:
    p = build_provider(cfg.sites[0], cfg.pilot, LocalExecutor(), cfg.factory.name)
    assert type(p) is case.provider
    assert isinstance(p, BatchProvider)
    return p


def submission(case: Backend, name: str, n: int) -> Submission:
    sub_id = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"{case.site}-{sub_id}-{i}", 1, 100, 0, 0, 600.0) for i in range(n))
    return Submission(sub_id, f"cf-{name}-{sub_id}", pilots)


def wait_for(
    p: BatchProvider, ids: list[str], name: str, done: Callable[[Observation], bool], timeout: float
) -> Observation:
    end = time.monotonic() + timeout
    while True:
        obs = asyncio.run(p.observe(ids, f"cf-{name}-"))
        if done(obs) or time.monotonic() > end:
            return obs
        time.sleep(0.5)


def until(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def test_pilots_run_and_are_cancelled(tmp_path: Path, setup: tuple[Backend, Any]) -> None:
    case, service = setup
    name = "bi" + uuid.uuid4().hex[:6]
    p = provider(make_config(tmp_path, case, service, name), case)
    sub = submission(case, name, case.pilots)
    started = time.monotonic()
    ids = [s.job_id for s in asyncio.run(p.submit(sub))]
    assert len(ids) == case.pilots and case.ids_ok(ids), ids

    obs = wait_for(p, ids, name, lambda o: all(s.state is JobState.RUNNING for s in o.statuses.values()), 120)
    assert {j: s.state for j, s in obs.statuses.items()} == dict.fromkeys(ids, JobState.RUNNING)
    print(f"{case.provider.backend}: {case.pilots} pilots RUNNING {time.monotonic() - started:.1f} s after qsub")
    assert {s.job_id: s.tag for s in obs.tagged} == dict.fromkeys(ids, sub.tag)
    if case.provider is SgeProvider:  # one array: each task knows its position
        assert sorted((s.job_id, s.array_index) for s in obs.tagged) == [(j, i) for i, j in enumerate(ids)]
    if case.provider.script_path is not BatchProvider.script_path:  # staged scripts, one per pilot
        staged = sorted((tmp_path / "pilots").glob(f"{sub.tag}-*.sh"))
        assert [f.name for f in staged] == [f"{sub.tag}-{pl.pilot_id}.sh" for pl in sub.pilots]
    # each job runs the pilot of its position
    for i, pilot in enumerate(sub.pilots):
        log = tmp_path / "pilots" / case.log(sub, ids, i)
        assert until(lambda log=log: log.exists() and "starting" in log.read_text(), 60), log
        assert f"campus-factory pilot {pilot.pilot_id} starting" in log.read_text()

    results = asyncio.run(p.cancel(ids, graceful=True))
    assert all(r.ok for r in results), results
    if case.from_accounting:  # gone from the queue at once; accounting lags a little
        obs = wait_for(p, ids, name, lambda o: all(s.from_accounting for s in o.statuses.values()), 90)
    else:
        obs = wait_for(p, ids, name, lambda o: all(s.state.finished for s in o.statuses.values()), 90)
    assert {s.state for s in obs.statuses.values()} == {case.ended}, obs.statuses
    assert {s.exit_code for s in obs.statuses.values()} == {case.ended_exit_code}
    assert [s for s in obs.tagged if not s.state.finished] == []
    # and the scheduler itself has nothing of ours left running or queued
    assert until(lambda: not case.leftover(service, sub.tag), 60), case.leftover(service, sub.tag)


def test_a_finished_pilot_is_reported_completed(tmp_path: Path, setup: tuple[Backend, Any]) -> None:
    case, service = setup
    name = "bf" + uuid.uuid4().hex[:6]
    p = provider(make_config(tmp_path, case, service, name, command=["sleep", "1"]), case)
    (job,) = asyncio.run(p.submit(submission(case, name, 1)))
    assert job.job_id.isdigit()
    # SGE writes its accounting record a few seconds after the job leaves qstat: until then the
    # job reads GONE for a moment, so wait for the record itself where the backend has one
    obs = wait_for(
        p,
        [job.job_id],
        name,
        lambda o: (
            o.statuses[job.job_id].state.finished and o.statuses[job.job_id].from_accounting is case.from_accounting
        ),
        120,
    )
    st = obs.statuses[job.job_id]
    assert st.state is JobState.COMPLETED and st.from_accounting is case.from_accounting, st
    if case.from_accounting:
        assert st.exit_code == 0


def test_unknown_jobs_are_gone_and_cannot_be_cancelled(tmp_path: Path, setup: tuple[Backend, Any]) -> None:
    case, service = setup
    name = "bu" + uuid.uuid4().hex[:6]
    p = provider(make_config(tmp_path, case, service, name), case)
    obs = asyncio.run(p.observe(["987654"], f"cf-{name}-"))
    assert obs.statuses["987654"].state is JobState.GONE  # after accounting was asked, where there is one
    assert [s for s in obs.tagged if s.tag.startswith(f"cf-{name}-")] == []
    results = asyncio.run(p.cancel(["987654"], graceful=False))
    assert not results[0].ok and "qdel" in results[0].detail


def test_factory_grows_and_shrinks(tmp_path: Path, setup: tuple[Backend, Any]) -> None:
    case, service = setup
    name = "bx" + uuid.uuid4().hex[:6]
    cfg = make_config(tmp_path, case, service, name)
    demand = StaticDemand([JobGroup("g", 2, cpus=1, memory_mb=100, disk_mb=0)])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {case.site: provider(cfg, case)})

    def states() -> dict[str, int]:
        out: dict[str, int] = {}
        for pilot in f.ledger.pilots(factory=name):
            out[pilot.state.value] = out.get(pilot.state.value, 0) + 1
        return out

    r = asyncio.run(f.run_once())
    assert r.submitted == 2, r.errors
    assert until(lambda: asyncio.run(f.run_once()) is not None and states() == {"running": 2}, 120), states()
    demand.groups = []
    assert until(lambda: asyncio.run(f.run_once()) is not None and "running" not in states(), 120), states()
    assert until(lambda: asyncio.run(f.run_once()) is not None and not f.ledger.live_pilots(name), 120), states()
    # cancelled jobs may linger a moment (SGE "dr", Slurm "COMPLETING") before they leave the queue
    assert until(lambda: not case.leftover(service, f"cf-{name}-"), 60), case.leftover(service, f"cf-{name}-")
