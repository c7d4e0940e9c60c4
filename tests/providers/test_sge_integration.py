"""The SGE provider, and the factory through it, against a real Son of Grid Engine (marker `sge`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from campus_factory.config import Config, parse_config
from campus_factory.demand import JobGroup, StaticDemand
from campus_factory.factory import Factory
from campus_factory.ledger import Ledger
from campus_factory.providers import build_provider
from campus_factory.providers.base import JobState, Observation, PilotRequest, Submission
from campus_factory.providers.sge import SgeProvider
from campus_factory.transport.executor import LocalExecutor

pytestmark = pytest.mark.sge


def make_config(tmp_path: Path, sge_cluster, name: str, command: list[str] | None = None, **site: object) -> Config:
    return parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "cycle_interval": 1},
            "pilot": {"payload": "command", "command": command or ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "gridengine",
                    "provider": "sge",
                    "walltime": "10m",
                    "idle_timeout": 2,
                    "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0},
                    "limits": {"max_pilots": 3, "max_queued": 3, "max_submit_per_cycle": 3},
                    "batch": {
                        "environment": sge_cluster.env,
                        "work_dir": str(tmp_path / "pilots"),
                        "command_timeout": 20,
                    },
                    **site,
                }
            ],
        }
    )


def provider(cfg: Config) -> SgeProvider:
    p = build_provider(cfg.sites[0], cfg.pilot, LocalExecutor(), cfg.factory.name)
    assert isinstance(p, SgeProvider)
    return p


def submission(name: str, n: int) -> Submission:
    sub_id = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"gridengine-{sub_id}-{i}", 1, 100, 0, 0, 600.0) for i in range(n))
    return Submission(sub_id, f"cf-{name}-{sub_id}", pilots)


def wait_for(
    p: SgeProvider, ids: list[str], name: str, done: Callable[[Observation], bool], timeout: float
) -> Observation:
    end = time.monotonic() + timeout
    while True:
        obs = asyncio.run(p.observe(ids, f"cf-{name}-"))
        if done(obs) or time.monotonic() > end:
            return obs
        time.sleep(0.5)


def test_array_of_pilots_runs_and_is_cancelled(tmp_path: Path, sge_cluster) -> None:
    name = "sg" + uuid.uuid4().hex[:6]
    p = provider(make_config(tmp_path, sge_cluster, name))
    sub = submission(name, 3)
    started = time.monotonic()
    submitted = asyncio.run(p.submit(sub))
    ids = [s.job_id for s in submitted]
    number = ids[0].split(".")[0]
    assert ids == [f"{number}.1", f"{number}.2", f"{number}.3"]

    obs = wait_for(p, ids, name, lambda o: all(s.state is JobState.RUNNING for s in o.statuses.values()), 30)
    assert {j: s.state for j, s in obs.statuses.items()} == dict.fromkeys(ids, JobState.RUNNING)
    print(f"SGE: 3 pilots RUNNING {time.monotonic() - started:.1f} s after qsub")
    assert sorted((s.job_id, s.array_index, s.tag) for s in obs.tagged) == [(j, i, sub.tag) for i, j in enumerate(ids)]
    # each task runs the pilot of its position: SGE_TASK_ID counts from 1
    logs = tmp_path / "pilots"
    for i, pilot in enumerate(sub.pilots):
        log = logs / f"{sub.tag}.o{number}.{i + 1}"
        assert until(lambda log=log: log.exists() and "starting" in log.read_text(), 10)
        assert f"campus-factory pilot {pilot.pilot_id} starting" in log.read_text()

    results = asyncio.run(p.cancel(ids, graceful=True))
    assert all(r.ok for r in results), results
    # gone from qstat at once; qacct then knows they were killed (the accounting file lags a little)
    obs = wait_for(p, ids, name, lambda o: all(s.from_accounting for s in o.statuses.values()), 30)
    assert {s.state for s in obs.statuses.values()} == {JobState.CANCELLED}, obs.statuses
    assert all(s.exit_code == 137 for s in obs.statuses.values())
    assert list(obs.tagged) == [] and sub.tag[:20] not in sge_cluster.qstat()


def until(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def test_a_finished_pilot_is_found_in_accounting(tmp_path: Path, sge_cluster) -> None:
    name = "sf" + uuid.uuid4().hex[:6]
    p = provider(make_config(tmp_path, sge_cluster, name, command=["sleep", "1"]))
    sub = submission(name, 1)
    (job,) = asyncio.run(p.submit(sub))
    assert job.job_id.isdigit()
    obs = wait_for(p, [job.job_id], name, lambda o: o.statuses[job.job_id].from_accounting, 40)
    st = obs.statuses[job.job_id]
    assert (st.state, st.exit_code, st.tag) == (JobState.COMPLETED, 0, sub.tag)
    # an id SGE never knew is GONE, after qacct was asked
    assert asyncio.run(p.observe(["999999"], "cf-")).statuses["999999"].state is JobState.GONE


def test_factory_grows_and_shrinks_on_sge(tmp_path: Path, sge_cluster) -> None:
    name = "sx" + uuid.uuid4().hex[:6]
    cfg = make_config(tmp_path, sge_cluster, name)
    demand = StaticDemand([JobGroup("g", 2, cpus=1, memory_mb=100, disk_mb=0)])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"gridengine": provider(cfg)})

    def states() -> dict[str, int]:
        out: dict[str, int] = {}
        for pilot in f.ledger.pilots(factory=name):
            out[pilot.state.value] = out.get(pilot.state.value, 0) + 1
        return out

    r = asyncio.run(f.run_once())
    assert r.submitted == 2, r.errors
    assert until(lambda: asyncio.run(f.run_once()) is not None and states() == {"running": 2}, 30), states()
    demand.groups = []
    assert until(lambda: asyncio.run(f.run_once()) is not None and "running" not in states(), 40), states()
    assert until(lambda: asyncio.run(f.run_once()) is not None and not f.ledger.live_pilots(name), 40), states()
    # qdel'ed tasks linger a moment in state "dr" before they leave qstat
    assert until(lambda: f"cf-{name}-"[:10] not in sge_cluster.qstat(), 20), sge_cluster.qstat()
