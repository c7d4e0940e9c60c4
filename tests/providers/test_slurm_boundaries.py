"""Real Slurm (marker `slurm`): cancels and queue reads at a Slurm site (issue 15).

* A graceful cancel of pending and running pilots together ends every one of them in one call,
  without a command timing out and without the hard-cancel fallback: on Slurm 22.05
  ``scancel --batch --signal=TERM`` on a pending job retries until the job starts or the command
  times out, so the pending pilot was never removed.
* A queue read that is garbled (a wrapper ``squeue`` in ``batch.bin_dir`` printing
  ``slurm_load_jobs error: Socket timed out`` with exit 0) or empty for one cycle marks no pilot
  lost and cancels no running pilot, then or when the queue answers again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.errors import CommandTimeout
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.providers.base import Submission
from campus_factory.providers.slurm import SlurmProvider
from campus_factory.transport.executor import CommandResult, LocalExecutor

pytestmark = pytest.mark.slurm

TIMEOUT = 20.0


class Watching(LocalExecutor):
    """The real executor, remembering every argv and every command that timed out."""

    def __init__(self) -> None:
        super().__init__()
        self.argvs: list[list[str]] = []
        self.timeouts: list[list[str]] = []

    async def run(  # type: ignore[override]
        self, argv: Sequence[str], *, timeout: float, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        self.argvs.append(list(argv))
        try:
            return await super().run(argv, timeout=timeout, stdin=stdin, env=env)
        except CommandTimeout:
            self.timeouts.append(list(argv))
            raise


def site_config(tmp_path: Path, cluster, name: str, **batch: object):
    return parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "submission_grace": 60},
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "alpha",
                    "provider": "slurm",
                    "walltime": "10m",
                    "slot": {"cpus": 4, "memory_mb": 100, "disk_mb": 0},
                    "limits": {"max_pilots": 3, "max_queued": 3, "max_submit_per_cycle": 3},
                    "batch": {
                        "environment": cluster.env,
                        "work_dir": str(tmp_path / "pilots"),
                        "command_timeout": TIMEOUT,
                        "term_margin": 30,
                        **batch,
                    },
                }
            ],
        }
    )


def states(cluster, jobs: Sequence[str]) -> dict[str, str]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(jobs)],
        env={**os.environ, **cluster.env},
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return dict(line.split("|", 1) for line in out.split() if "|" in line)


def wait_for(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.3)
    return False


def test_cancel_of_pending_and_running_pilots_needs_no_timeout_nor_fallback(tmp_path: Path, slurm_cluster) -> None:
    name = "cx" + uuid.uuid4().hex[:6]
    cfg = site_config(tmp_path, slurm_cluster, name)
    ex = Watching()
    p = SlurmProvider(cfg.sites[0], cfg.pilot, ex, name)
    sub_id = uuid.uuid4().hex[:10]
    # 4-core pilots on two 4-core nodes: two run, the third waits
    pilots = tuple(PilotRequest(f"alpha-{i}", 4, 100, 0, 0, 600.0) for i in range(3))
    jobs = [s.job_id for s in asyncio.run(p.submit(Submission(sub_id, f"cf-{name}-{sub_id}", pilots)))]
    try:
        assert wait_for(lambda: sorted(states(slurm_cluster, jobs).values()) == ["PENDING", "RUNNING", "RUNNING"], 60)
        ex.argvs.clear()
        results = asyncio.run(p.cancel(jobs, graceful=True))
        assert [r.ok for r in results] == [True] * 3, results
        assert ex.timeouts == []
        # the pending pilot is removed, the running ones leave by themselves (their TERM trap)
        assert wait_for(lambda: set(states(slurm_cluster, jobs).values()) <= {"COMPLETED", "CANCELLED"}, 90)
        final = states(slurm_cluster, jobs)
        assert sorted(final.values()) == ["CANCELLED", "COMPLETED", "COMPLETED"], (final, ex.argvs)
        logs = [f.read_text() for f in (tmp_path / "pilots").glob(f"cf-{name}-*.out")]
        assert sum("leaving (rc=143, asked=1)" in text for text in logs) == 2, logs
        # two filtered scancels and nothing else: no hard-cancel fallback of the running pilots
        # (the three elements named as one range of their array)
        assert [a[1:-1] for a in ex.argvs] == [["--state=PENDING"], ["--batch", "--signal=TERM", "--state=RUNNING"]]
        assert {a[-1] for a in ex.argvs} == {jobs[0].split("_")[0] + "_[0-2]"}
    finally:
        subprocess.run(["scancel", *jobs], env={**os.environ, **slurm_cluster.env}, capture_output=True, timeout=30)


SQUEUE_WRAPPER = """#!/bin/sh
# squeue that misbehaves once when {flag} exists (then behaves), else the real one
if [ -e {flag} ]; then
    mode=$(cat {flag}); rm -f {flag}
    case "$mode" in
        garbled) echo "slurm_load_jobs error: Socket timed out on send/recv operation"; exit 0 ;;
        empty) exit 0 ;;
    esac
fi
exec {real} "$@"
"""


def bin_dir_with_squeue_wrapper(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir, flag = tmp_path / "bin", tmp_path / "squeue-misbehaves"
    bin_dir.mkdir()
    for name in ("sbatch", "scancel", "sacct"):
        real = shutil.which(name)
        assert real, name
        (bin_dir / name).symlink_to(real)
    wrapper = bin_dir / "squeue"
    wrapper.write_text(SQUEUE_WRAPPER.format(flag=flag, real=shutil.which("squeue")))
    wrapper.chmod(0o755)
    return bin_dir, flag


@pytest.mark.parametrize("mode", ["garbled", "empty"])
def test_a_bad_queue_read_for_one_cycle_kills_no_running_pilot(tmp_path: Path, slurm_cluster, mode: str) -> None:
    name = "gq" + uuid.uuid4().hex[:6]
    bin_dir, flag = bin_dir_with_squeue_wrapper(tmp_path)
    cfg = site_config(tmp_path, slurm_cluster, name, bin_dir=str(bin_dir))
    site = cfg.sites[0]
    cfg = cfg.model_copy(update={"sites": [site.model_copy(update={"slot": site.slot.model_copy(update={"cpus": 1})})]})
    ex = Watching()
    provider = SlurmProvider(cfg.sites[0], cfg.pilot, ex, name)
    demand = StaticDemand([JobGroup("g", 3, cpus=1, memory_mb=100, disk_mb=0)])
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, {"alpha": provider})
    try:
        assert asyncio.run(f.run_once()).submitted == 3
        assert wait_for(lambda: asyncio.run(f.run_once()).errors == [] and live(f) == {"running": 3}, 60), live(f)
        jobs = sorted(p.job_id or "" for p in f.ledger.live_pilots(name))
        flag.write_text(mode)
        bad = asyncio.run(f.run_once())
        assert not flag.exists()  # the wrapper misbehaved in this cycle
        assert live(f) == {"running": 3}  # no pilot is lost on one read
        assert any(e.startswith("alpha: observe failed") for e in bad.errors), bad.errors
        assert bad.submitted == 0 and bad.cancelled == 0 and bad.orphans_cancelled == 0
        # the queue answers again: every pilot is still ours, still running, nothing is cancelled
        for _ in range(2):
            good = asyncio.run(f.run_once())
            assert good.errors == [] and good.orphans_cancelled == 0 and good.cancelled == 0, good
            assert live(f) == {"running": 3}
        assert states(slurm_cluster, jobs) == dict.fromkeys(jobs, "RUNNING")
        assert not [a for a in ex.argvs if a[0].endswith("scancel")]
    finally:
        f.ledger.close()
        jobs_left = [p.job_id for p in Ledger.open(cfg.factory.ledger_url).pilots(factory=name) if p.job_id]
        if jobs_left:
            subprocess.run(["scancel", *jobs_left], env={**os.environ, **slurm_cluster.env}, capture_output=True)


def live(f: Factory) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in f.ledger.pilots(factory=f.name):
        out[p.state.value] = out.get(p.state.value, 0) + 1
    return out
