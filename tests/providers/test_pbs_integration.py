"""The PBS provider against real PBS commands: Slurm's PBS wrappers (Debian slurm-wlm-torque,
unpacked to /opt/slurm-torque) in front of the Slurm test cluster (marker `pbs`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from campus_factory.config import Config, parse_config
from campus_factory.providers import build_provider
from campus_factory.providers.base import JobState, Observation, PilotRequest, Submission
from campus_factory.providers.pbs import PbsProvider, SlurmPbsProvider
from campus_factory.transport.executor import LocalExecutor

pytestmark = pytest.mark.pbs


def make_config(tmp_path: Path, pbs_commands, name: str, command: list[str] | None = None) -> Config:
    return parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite"},
            "pilot": {"payload": "command", "command": command or ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "torque",
                    "provider": "pbs",
                    "walltime": "10m",
                    "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0},
                    "batch": {
                        "pbs_flavor": "slurm",
                        "bin_dir": pbs_commands.bin_dir,
                        "environment": pbs_commands.env,
                        "work_dir": str(tmp_path / "pilots"),
                        "command_timeout": 20,
                    },
                }
            ],
        }
    )


def provider(cfg: Config) -> PbsProvider:
    p = build_provider(cfg.sites[0], cfg.pilot, LocalExecutor(), cfg.factory.name)
    assert isinstance(p, SlurmPbsProvider)
    return p


def submission(name: str, n: int) -> Submission:
    sub_id = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"torque-{sub_id}-{i}", 1, 100, 0, 0, 600.0) for i in range(n))
    return Submission(sub_id, f"cf-{name}-{sub_id}", pilots)


def wait_for(
    p: PbsProvider, ids: list[str], name: str, done: Callable[[Observation], bool], timeout: float
) -> Observation:
    end = time.monotonic() + timeout
    while True:
        obs = asyncio.run(p.observe(ids, f"cf-{name}-"))
        if done(obs) or time.monotonic() > end:
            return obs
        time.sleep(0.5)


def test_pilots_run_and_are_cancelled(tmp_path: Path, pbs_commands) -> None:
    name = "pb" + uuid.uuid4().hex[:6]
    p = provider(make_config(tmp_path, pbs_commands, name))
    sub = submission(name, 2)
    started = time.monotonic()
    ids = [s.job_id for s in asyncio.run(p.submit(sub))]
    assert len(ids) == 2 and all(j.isdigit() for j in ids) and ids[0] != ids[1]

    obs = wait_for(p, ids, name, lambda o: all(s.state is JobState.RUNNING for s in o.statuses.values()), 30)
    assert {j: s.state for j, s in obs.statuses.items()} == dict.fromkeys(ids, JobState.RUNNING)
    print(f"PBS wrappers: 2 pilots RUNNING {time.monotonic() - started:.1f} s after qsub")
    assert {s.job_id: s.tag for s in obs.tagged} == dict.fromkeys(ids, sub.tag)
    # the scripts were staged in work_dir (the wrapper's qsub takes no stdin) and ran each its pilot
    staged = sorted((tmp_path / "pilots").glob(f"{sub.tag}-*.sh"))
    assert [f.name for f in staged] == [f"{sub.tag}-{pl.pilot_id}.sh" for pl in sub.pilots]
    for job_id, pilot in zip(ids, sub.pilots, strict=True):
        log = tmp_path / "pilots" / f"{sub.tag}-{job_id}.out"
        assert until(lambda log=log: log.exists() and "starting" in log.read_text(), 10)
        assert f"campus-factory pilot {pilot.pilot_id} starting" in log.read_text()

    results = asyncio.run(p.cancel(ids, graceful=True))
    assert all(r.ok for r in results), results
    obs = wait_for(p, ids, name, lambda o: all(s.state.finished for s in o.statuses.values()), 30)
    # the wrapper shows every ended job as "C": no exit status, so COMPLETED
    assert {s.state for s in obs.statuses.values()} == {JobState.COMPLETED}
    assert [s for s in obs.tagged if not s.state.finished] == []
    # and Slurm itself has nothing of ours left running or queued
    squeue = pbs_commands.cluster.squeue()
    assert not [line for line in squeue if sub.tag in line and ("RUNNING" in line or "PENDING" in line)]


def until(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def test_empty_queue_and_unknown_jobs(tmp_path: Path, pbs_commands) -> None:
    name = "pe" + uuid.uuid4().hex[:6]
    p = provider(make_config(tmp_path, pbs_commands, name))
    obs = asyncio.run(p.observe(["987654"], f"cf-{name}-"))
    assert obs.statuses["987654"].state is JobState.GONE  # no history in the wrappers: gone
    assert [s for s in obs.tagged if s.tag.startswith(f"cf-{name}-")] == []
    results = asyncio.run(p.cancel(["987654"], graceful=False))
    assert not results[0].ok and "qdel" in results[0].detail
