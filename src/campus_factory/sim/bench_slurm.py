"""Real Slurm at N pilots: submit, status and cancel through the provider, against the floor.

The floor is what Slurm itself needs for the same work: one ``sbatch --array=0-(N-1)`` and one
``scancel ID`` of the whole array (and one ``squeue`` of it). The provider's run submits N
pilots as one submission (one job array), observes them (one queue listing), and cancels every
one of them by job id (a graceful cancel: pending ones removed, running ones asked to leave).
The pilots sleep; the cluster is whatever ``SLURM_CONF`` (or the default config) names.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..config import parse_config
from ..domain import PilotRequest
from ..errors import CampusFactoryError
from ..providers.base import JobState, Submission
from ..providers.slurm import SlurmProvider
from ..transport.executor import LocalExecutor

__all__ = ["SlurmBenchResult", "render_slurm_markdown", "replace_slurm_section", "run_slurm_bench"]


@dataclass(frozen=True)
class SlurmBenchResult:
    pilots: int
    floor_submit_s: float
    floor_status_s: float
    floor_cancel_s: float
    submit_s: float
    status_s: float
    cancel_s: float
    cancelled: int  # pilots the next observe reported cancelled (or ended), of ``pilots``
    first_status_s: float = 0.0  # a process's first observe: the whole ``--me`` listing

    @property
    def floor_s(self) -> float:
        return self.floor_submit_s + self.floor_status_s + self.floor_cancel_s

    @property
    def total_s(self) -> float:
        return self.submit_s + self.status_s + self.cancel_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "floor_s": self.floor_s, "total_s": self.total_s, "ratio": self.total_s / self.floor_s}


def _timed(argv: list[str], stdin: str | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise CampusFactoryError(f"{argv[0]} failed: {proc.stderr.strip()[:500]}")
    return time.perf_counter() - t, proc.stdout


def _floor(pilots: int, work_dir: str) -> tuple[float, float, float]:
    script = "#!/bin/sh\nsleep 600\n"
    name = f"cf-floor-{uuid.uuid4().hex[:10]}"
    sub_s, out = _timed(
        [
            "sbatch",
            "--parsable",
            f"--array=0-{pilots - 1}",
            f"--job-name={name}",
            "--cpus-per-task=1",
            "--mem=10",
            f"--output={work_dir}/floor-%A_%a.out",
            "--time=10",
        ],
        script,
    )
    job = out.strip().split(";", 1)[0]
    status_s, _ = _timed(["squeue", "--me", "-h", "-r", "-t", "all", "-o", "%i|%T|%K|%r|%j", f"--name={name}"])
    cancel_s, _ = _timed(["scancel", job])
    return sub_s, status_s, cancel_s


def run_slurm_bench(pilots: int = 1000) -> SlurmBenchResult:
    with tempfile.TemporaryDirectory(prefix="cf-bench-slurm-") as work:
        floor = _floor(pilots, work)
        env = {"SLURM_CONF": os.environ["SLURM_CONF"]} if "SLURM_CONF" in os.environ else {}
        config = parse_config(
            {
                "factory": {"name": "benchslurm"},
                "pilot": {"payload": "command", "command": ["sleep", "600"]},
                "sites": [
                    {
                        "name": "alpha",
                        "provider": "slurm",
                        "walltime": "10m",
                        "slot": {"cpus": 1, "memory_mb": 10, "disk_mb": 0},
                        "batch": {"work_dir": work, "environment": env, "command_timeout": 120},
                    }
                ],
            }
        )
        provider = SlurmProvider(config.sites[0], config.pilot, LocalExecutor(), "benchslurm")
        sub_id = uuid.uuid4().hex[:10]
        reqs = tuple(PilotRequest(f"alpha-{i:05d}", 1, 10, 0, 0, 600.0) for i in range(pilots))
        submission = Submission(sub_id, f"cf-benchslurm-{sub_id}", reqs)
        t = time.perf_counter()
        submitted = asyncio.run(provider.submit(submission))
        submit_s = time.perf_counter() - t
        ids = [s.job_id for s in submitted]
        t = time.perf_counter()
        asyncio.run(provider.observe(ids, "cf-benchslurm-"))  # the first: all of --me (adoption)
        first_status_s = time.perf_counter() - t
        t = time.perf_counter()
        asyncio.run(provider.observe(ids, "cf-benchslurm-"))  # every other cycle: our tags only
        status_s = time.perf_counter() - t
        t = time.perf_counter()
        done = asyncio.run(provider.cancel(ids, graceful=True))
        cancel_s = time.perf_counter() - t
        if not all(r.ok for r in done):
            raise CampusFactoryError(f"cancel failed: {next(r.detail for r in done if not r.ok)}")
        after = asyncio.run(provider.observe(ids, "cf-benchslurm-"))
        ended = (JobState.CANCELLED, JobState.COMPLETED)
        cancelled = sum(1 for st in after.statuses.values() if st.state in ended)
        return SlurmBenchResult(pilots, *floor, submit_s, status_s, cancel_s, cancelled, first_status_s)


MARK_START = "<!-- bench:slurm:start -->"
MARK_END = "<!-- bench:slurm:end -->"


def render_slurm_markdown(r: SlurmBenchResult, command: str, machine: str, date: str) -> str:
    def ms(x: float) -> str:
        return f"{x * 1000:.0f} ms"

    return "\n".join(
        [
            MARK_START,
            "## Real Slurm at 1,000 pilots",
            "",
            f"`{command}` — {r.pilots} pilots submitted as one job array through the Slurm provider, "
            "listed, then cancelled gracefully by job id (pending ones removed, running ones "
            "asked to leave), on the test suite's two-node Slurm 22.05 cluster "
            "(`tests/services/slurm-up.sh`). The floor: one `sbatch --array`, one `squeue` of it "
            "and one `scancel` of the whole array, run directly.",
            "",
            "| | submit | status | cancel | all three |",
            "|---|---|---|---|---|",
            f"| floor (Slurm alone) | {ms(r.floor_submit_s)} | {ms(r.floor_status_s)} | "
            f"{ms(r.floor_cancel_s)} | {ms(r.floor_s)} |",
            f"| the provider | {ms(r.submit_s)} | {ms(r.status_s)} | {ms(r.cancel_s)} | {ms(r.total_s)} |",
            "",
            f"The provider takes **{r.total_s / r.floor_s:.1f}x** the floor (target: within 3x); the next "
            f"observe reported {r.cancelled} of the {r.pilots} pilots cancelled or ended (none lost). "
            "Status is a cycle's listing (`squeue --name` with the factory's own submissions); a "
            f"process's first listing reads all of `--me` (adoption after a crash): {ms(r.first_status_s)}. "
            "The submit includes rendering the pilots' script and, once per process, creating the work "
            "directory; the graceful cancel is two `scancel` calls (pending pilots removed, running "
            "ones sent TERM), each naming the array once as a range.",
            "",
            f"Measured {date} on: {machine}.",
            MARK_END,
        ]
    )


def replace_slurm_section(doc: str, section: str) -> str:
    if MARK_START in doc and MARK_END in doc:
        head, rest = doc.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        return head + section + tail
    return doc.rstrip("\n") + "\n\n" + section + "\n"
