"""Slurm at scale without a cluster: whole arrays cancelled as ranges, the queue asked only for
our jobs (real Slurm: tests/providers/test_slurm_scale.py)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.providers.test_slurm_parsers import OK, ScriptedExecutor, provider, submission

from campus_factory.providers.base import JobState
from campus_factory.providers.slurm import FULL_LISTING_EVERY, compress_ids, expand_ids


def test_compress_ids_names_each_array_once() -> None:
    ids = [f"7_{i}" for i in range(1000)] + ["9", "8_3", "8_5", "8_4", "8_9"]
    assert compress_ids(ids) == ["9", "7_[0-999]", "8_[3-5,9]"]
    assert compress_ids(["7_2"]) == ["7_2"]


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 300), min_size=1), st.sets(st.integers(1, 50)))
def test_expanding_the_ranges_gives_the_ids_back(indices: set[int], plain: set[int]) -> None:
    ids = [f"12_{i}" for i in sorted(indices)] + [str(p) for p in sorted(plain)]
    assert sorted(j for c in compress_ids(ids) for j in expand_ids(c)) == sorted(ids)


def test_a_plain_cancel_of_a_whole_array_is_one_range() -> None:
    ex = ScriptedExecutor((["scancel"], OK))
    p = provider(ex)
    done = asyncio.run(p.cancel([f"55_{i}" for i in range(1000)], graceful=False))
    assert all(r.ok for r in done) and len(done) == 1000
    assert ex.argvs() == [("scancel", "55_[0-999]")]


def test_a_graceful_cancel_maps_range_errors_back_to_elements() -> None:
    err = "scancel: error: Kill job error on job id 55_[3-4]: Invalid job id specified\n"
    ex = ScriptedExecutor(
        (["scancel", "--state=PENDING"], (1, "", err)),
        (["scancel", "--batch"], (1, "", "scancel: error: Kill job error on job id 55_[0-2]: Invalid job id\n")),
    )
    p = provider(ex)
    done = asyncio.run(p.cancel([f"55_{i}" for i in range(5)], graceful=True))
    assert all(r.ok for r in done)
    assert ex.argvs() == [
        ("scancel", "--state=PENDING", "55_[0-4]"),
        ("scancel", "--batch", "--signal=TERM", "--state=RUNNING", "55_[0-4]"),
    ]


def test_the_queue_is_asked_only_for_our_submissions_between_full_listings() -> None:
    tag = "cf-campus-abc0123456"
    line = f"41_0|PENDING|0|None|{tag}\n"
    script = [(["sbatch"], (0, "41\n", ""))] + [(["squeue"], (0, line, ""))] * FULL_LISTING_EVERY
    ex = ScriptedExecutor((["mkdir"], OK), *script)
    p = provider(ex)
    asyncio.run(p.submit(submission(2)))
    for _ in range(FULL_LISTING_EVERY):
        asyncio.run(p.observe(["41_0"], "cf-campus-"))
    listings = [c for c in ex.argvs() if c[0] == "squeue"]
    assert not any(a.startswith("--name=") for a in listings[0])  # the first: everything (adoption)
    assert all(c[-1] == f"--name={tag}" for c in listings[1:])


def test_nothing_of_ours_means_no_queue_listing_until_the_next_full_one() -> None:
    ex = ScriptedExecutor((["squeue"], OK))
    p = provider(ex)
    asyncio.run(p.observe([], "cf-campus-"))  # the first listing: in full
    obs = asyncio.run(p.observe([], "cf-campus-"))
    assert obs.statuses == {} and len(ex.argvs()) == 1


def test_an_element_cancelled_while_pending_is_cancelled_not_gone() -> None:
    # squeue lists a removed pending element no more, and no accounting has it
    ex = ScriptedExecutor(
        (["scancel"], OK),
        (["squeue"], (0, "", "")),
        (["sacct"], (0, "", "")),
        (["sacct", "-c"], (0, "", "")),
    )
    p = provider(ex)
    asyncio.run(p.cancel(["61_3", "61_4"], graceful=False))
    obs = asyncio.run(p.observe(["61_3", "61_4", "62"], "cf-campus-"))
    assert obs.statuses["61_3"].state is JobState.CANCELLED and obs.statuses["61_4"].state is JobState.CANCELLED
    assert obs.statuses["62"].state is JobState.GONE  # not ours to explain


def test_start_and_end_times_are_the_sites_and_only_facts() -> None:
    import time as _time

    from campus_factory.providers.slurm import parse_sacct, parse_squeue, slurm_time

    t = _time.mktime(_time.strptime("2026-12-03T06:50:01", "%Y-%m-%dT%H:%M:%S"))
    assert slurm_time("2026-12-03T06:50:01") == t and slurm_time("N/A") is None and slurm_time("x") is None
    rows = parse_squeue(
        "5_0|COMPLETED|0|None|2026-12-03T06:50:01|2026-12-03T06:50:47|cf-a|b\n"
        "5_1|RUNNING|1|None|2026-12-03T06:50:01|2026-12-03T07:50:01|cf-a\n"
        "5_2|PENDING|2|Priority|2026-12-03T08:00:00|2026-12-03T09:00:00|cf-a\n"
        "6|RUNNING|N/A|None|cf-old\n"
    )
    assert [(r.job_id, r.started_at, r.ended_at) for r in rows] == [
        ("5_0", t, t + 46),
        ("5_1", t, None),  # a running job's end is a forecast
        ("5_2", None, None),  # and a pending one's start
        ("6", None, None),  # the older format still reads
    ]
    assert rows[0].tag == "cf-a|b"
    (acct,) = parse_sacct("5_0|CANCELLED by 0|0:15|2026-12-03T06:50:01|2026-12-03T06:50:47|cf-a\n")
    assert acct.state is JobState.CANCELLED and (acct.started_at, acct.ended_at) == (t, t + 46)
