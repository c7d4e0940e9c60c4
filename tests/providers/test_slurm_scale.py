"""Real Slurm (marker `slurm`) at 1,000 pilots: one array submitted, listed, cancelled as one range.

What the issue found at this size: a cancel named every element (Slurm then handles each as its own
request), the queue was read for all of the account's jobs, and after an element-by-element cancel
of pending elements the next observe reported them GONE (Slurm keeps no record of a pending array
element it removed). Speed is recorded by ``make bench-slurm``; here only counts and states.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from tests.providers.test_slurm_boundaries import Watching, site_config

from campus_factory.domain import PilotRequest
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.slurm import SlurmProvider

pytestmark = pytest.mark.slurm

N = 1000


def test_a_thousand_pilots_are_one_submit_one_listing_and_one_cancel(tmp_path: Path, slurm_cluster) -> None:
    name = "sc" + uuid.uuid4().hex[:6]
    cfg = site_config(tmp_path, slurm_cluster, name)
    ex = Watching()
    p = SlurmProvider(cfg.sites[0], cfg.pilot, ex, name)
    sub_id = uuid.uuid4().hex[:10]
    # 4-core pilots on two 4-core nodes: two run, 998 wait
    pilots = tuple(PilotRequest(f"alpha-{i:04d}", 4, 10, 0, 0, 600.0) for i in range(N))
    jobs = [s.job_id for s in asyncio.run(p.submit(Submission(sub_id, f"cf-{name}-{sub_id}", pilots)))]
    base = jobs[0].split("_")[0]
    try:
        assert len(jobs) == N and sum(a[0].endswith("sbatch") for a in ex.argvs) == 1
        first = asyncio.run(p.observe(jobs, f"cf-{name}-"))  # the first listing: the whole --me
        second = asyncio.run(p.observe(jobs, f"cf-{name}-"))  # then only our submission's tag
        listings = [a for a in ex.argvs if a[0].endswith("squeue")]
        assert len(listings) == 2 and listings[1][-1] == f"--name=cf-{name}-{sub_id}"
        for obs in (first, second):
            assert len(obs.statuses) == N
            assert {st.state for st in obs.statuses.values()} <= {JobState.PENDING, JobState.RUNNING}
        ex.argvs.clear()
        done = asyncio.run(p.cancel(jobs, graceful=True))
        assert all(r.ok for r in done) and len(done) == N
        # every command names the array once, as a range: not a thousand ids
        assert all(len(a) < 10 for a in ex.argvs) and {a[-1] for a in ex.argvs} == {f"{base}_[0-{N - 1}]"}
        after = asyncio.run(p.observe(jobs, f"cf-{name}-"))
        counts: dict[JobState, int] = {}
        for st in after.statuses.values():
            counts[st.state] = counts.get(st.state, 0) + 1
        assert JobState.GONE not in counts, counts  # removed while pending: cancelled, not lost
        assert counts.get(JobState.CANCELLED, 0) >= N - 2, counts
    finally:
        subprocess.run(["scancel", base], env={**os.environ, **slurm_cluster.env}, capture_output=True, timeout=30)
