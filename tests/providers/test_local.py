"""The local provider: pilots as processes on this host, through the real loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.local import LocalProvider


def config(tmp_path: Path, command: list[str]):
    return parse_config(
        {
            "factory": {"name": "loc", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            "pilot": {"command": command},
            "sites": [
                {
                    "name": "here",
                    "provider": "local",
                    "idle_timeout": 0,
                    "slot": {"cpus": 1, "memory_mb": 100},
                    "limits": {"max_pilots": 2, "max_queued": 2, "max_submit_per_cycle": 2},
                    "batch": {"work_dir": str(tmp_path / "work")},
                }
            ],
        }
    )


def wait_for(pred, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_pilots_run_are_observed_and_leave_cleanly(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["sleep", "60"])
    prov = LocalProvider(cfg.sites[0], cfg.pilot, "loc")
    demand = StaticDemand([JobGroup("g", 2, cpus=1, memory_mb=100, disk_mb=0)])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"here": prov})
    r = asyncio.run(f.run_once())
    assert r.submitted == 2
    asyncio.run(f.run_once())
    assert {p.state.value for p in f.ledger.pilots(factory="loc")} == {"running"}
    demand.groups = []
    asyncio.run(f.run_once())  # idle_timeout 0: asked to leave (TERM, trapped)

    def ended() -> bool:
        asyncio.run(f.run_once())
        return {p.state.value for p in f.ledger.pilots(factory="loc")} == {"ended"}

    assert wait_for(ended)
    logs = sorted((tmp_path / "work").glob("cf-loc-*.out"))
    assert len(logs) == 2 and all("asked=1" in p.read_text() for p in logs)


def test_exit_status_and_plain_cancel(tmp_path: Path) -> None:
    cfg = config(tmp_path, ["sh", "-c", "exit 3"])
    prov = LocalProvider(cfg.sites[0], cfg.pilot, "loc")
    req = PilotRequest("here-1", 1, 100, 0, 0, 60)
    (sub,) = asyncio.run(prov.submit(Submission("aaaaaaaaaa", "cf-loc-aaaaaaaaaa", (req,))))

    def status():
        return asyncio.run(prov.observe([sub.job_id], "cf-loc-")).statuses[sub.job_id]

    assert wait_for(lambda: status().state is JobState.FAILED)
    assert status().exit_code == 3
    cfg2 = config(tmp_path, ["sleep", "60"])
    prov2 = LocalProvider(cfg2.sites[0], cfg2.pilot, "loc")
    (sub2,) = asyncio.run(prov2.submit(Submission("bbbbbbbbbb", "cf-loc-bbbbbbbbbb", (req,))))
    assert asyncio.run(prov2.observe([sub2.job_id], "cf-loc-")).statuses[sub2.job_id].state is JobState.RUNNING
    asyncio.run(prov2.cancel([sub2.job_id], graceful=False))
    assert wait_for(
        lambda: asyncio.run(prov2.observe([sub2.job_id], "cf-loc-")).statuses[sub2.job_id].state is JobState.CANCELLED
    )
    # a restarted provider object finds the pilots through their state files
    prov3 = LocalProvider(cfg2.sites[0], cfg2.pilot, "loc")
    obs = asyncio.run(prov3.observe([], "cf-loc-"))
    assert {s.tag for s in obs.tagged} == {"cf-loc-aaaaaaaaaa", "cf-loc-bbbbbbbbbb"}


# -- issue 15, item 12: no IDTOKEN left behind ----------------------------------------------------
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2NhbC1waWxvdCJ9.bG9jYWwtc2lnbmF0dXJl"


def glidein_config(tmp_path: Path, master: str):
    """A glidein site whose token comes from a stand-in condor_token_create, whose HTCondor is a
    stand-in condor_master (``master`` is its shell body)."""
    bin_dir = tmp_path / "bin"
    (tmp_path / "condor" / "sbin").mkdir(parents=True)
    bin_dir.mkdir()
    (bin_dir / "condor_token_create").write_text(f"#!/bin/sh\necho {TOKEN}\n")
    (tmp_path / "condor" / "sbin" / "condor_master").write_text("#!/bin/sh\n" + master)
    for f in (bin_dir / "condor_token_create", tmp_path / "condor" / "sbin" / "condor_master"):
        f.chmod(0o755)
    (tmp_path / "scratch").mkdir()
    return parse_config(
        {
            "factory": {"name": "loc", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite"},
            "pilot": {
                "payload": "glidein",
                "condor_locations": [str(tmp_path / "condor")],
                "scratch": str(tmp_path / "scratch"),
                "token": {"command": [str(bin_dir / "condor_token_create")]},
            },
            "sites": [
                {
                    "name": "here",
                    "provider": "local",
                    "slot": {"cpus": 1, "memory_mb": 100},
                    "batch": {"work_dir": str(tmp_path / "work")},
                }
            ],
        }
    )


def holding_the_token(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]


def test_a_local_pilot_leaves_no_token_behind(tmp_path: Path) -> None:
    from campus_factory.pilot.payload import GlideinBuilder
    from campus_factory.transport.executor import LocalExecutor

    cfg = glidein_config(tmp_path, 'sleep "${CF_MASTER_SLEEP:-0}"\n')
    builder = GlideinBuilder(cfg.pool, cfg.pilot, LocalExecutor(), "loc")
    prov = LocalProvider(cfg.sites[0], cfg.pilot, "loc", builder)
    req = PilotRequest("here-1", 1, 100, 0, 0, 60)
    (sub,) = asyncio.run(prov.submit(Submission("cccccccccc", "cf-loc-cccccccccc", (req,))))
    script = tmp_path / "work" / ".cf-local" / f"{sub.job_id}.sh"
    assert script.exists() and (script.stat().st_mode & 0o777) == 0o700

    def ended() -> bool:
        return asyncio.run(prov.observe([sub.job_id], "cf-loc-")).statuses[sub.job_id].state is not JobState.RUNNING

    assert wait_for(ended, 30)
    assert asyncio.run(prov.observe([sub.job_id], "cf-loc-")).statuses[sub.job_id].exit_code == 0
    assert holding_the_token(tmp_path / "work") == [] and holding_the_token(tmp_path / "scratch") == []


def test_a_killed_local_pilot_leaves_no_script_behind(tmp_path: Path) -> None:
    from campus_factory.pilot.payload import GlideinBuilder
    from campus_factory.transport.executor import LocalExecutor

    cfg = glidein_config(tmp_path, "sleep 60\n")
    builder = GlideinBuilder(cfg.pool, cfg.pilot, LocalExecutor(), "loc")
    prov = LocalProvider(cfg.sites[0], cfg.pilot, "loc", builder)
    req = PilotRequest("here-1", 1, 100, 0, 0, 60)
    (sub,) = asyncio.run(prov.submit(Submission("dddddddddd", "cf-loc-dddddddddd", (req,))))
    assert wait_for(lambda: bool(list((tmp_path / "scratch").glob("cf-pilot.*/tokens.d/*"))), 30)
    (res,) = asyncio.run(prov.cancel([sub.job_id], graceful=False))
    assert res.ok
    assert holding_the_token(tmp_path / "work") == []
    # (the glidein's scratch directory of a SIGKILLed pilot is not cleaned: see docs/security.md)
