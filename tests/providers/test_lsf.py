"""LSF: no LSF can run here, so the provider is tested on output documented in IBM's LSF 10.1
manuals only (tests/providers/data/README.md), and on a fake executor for its command flow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.domain import PilotRequest
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.lsf import LSF_STATES, LsfProvider, parse_bjobs
from campus_factory.transport.executor import CommandResult

DATA = Path(__file__).parent / "data"


def test_bjobs_json() -> None:
    jobs = {s.job_id: s for s in parse_bjobs((DATA / "lsf_bjobs.json").read_text())}
    assert set(jobs) == {"5021", "5022[1]", "5022[2]", "5022[3]", "5023", "5024"}
    assert jobs["5021"].state is JobState.RUNNING and jobs["5021"].array_index is None
    assert (jobs["5022[2]"].state, jobs["5022[2]"].array_index, jobs["5022[2]"].tag) == (
        JobState.PENDING,
        1,
        "cf-campus-3c4d5e6f7a",
    )
    assert jobs["5022[3]"].state is JobState.PENDING  # PSUSP
    assert jobs["5023"].state is JobState.RUNNING  # SSUSP
    assert jobs["5024"].state is JobState.UNKNOWN


def test_bjobs_a_finished_jobs() -> None:
    jobs = {s.job_id: s for s in parse_bjobs((DATA / "lsf_bjobs_a.json").read_text(), accounting=True)}
    assert set(jobs) == {"5021", "5025", "5026"}, "the ERROR record of an unknown job is skipped"
    assert (jobs["5021"].state, jobs["5021"].exit_code) == (JobState.COMPLETED, 0)
    assert jobs["5025"].state is JobState.CANCELLED  # EXIT 130 after bkill
    assert (jobs["5026"].state, jobs["5026"].exit_code) == (JobState.FAILED, 1)
    assert all(s.from_accounting for s in jobs.values())


def test_bjobs_delimited() -> None:
    jobs = {s.job_id: s for s in parse_bjobs((DATA / "lsf_bjobs_delimited.txt").read_text())}
    assert jobs["5022[1]"].tag == "cf-campus-3c4d5e6f7a" and jobs["5022[1]"].array_index == 0
    assert jobs["5027"].state is JobState.CANCELLED and jobs["5028"].state is JobState.COMPLETED
    assert parse_bjobs("") == []


def test_unknown_state_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        (job,) = parse_bjobs("77|0|WEIRD|-|cf-x-0123456789")
    assert job.state is JobState.UNKNOWN and "unknown job state 'WEIRD'" in caplog.text
    assert {"PEND", "RUN", "DONE", "EXIT", "PSUSP", "USUSP", "SSUSP", "UNKWN", "WAIT", "ZOMBI", "PROV"} == set(
        LSF_STATES
    )


class Recorder:
    """A fake executor that answers like LSF (documented answers) and records every call."""

    def __init__(self, answers: Mapping[str, CommandResult]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], str | None]] = []

    async def run(
        self, argv: Sequence[str], *, timeout: float, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        self.calls.append((list(argv), stdin))
        key = " ".join(argv[:2]) if argv[0] == "bjobs" and argv[1] == "-a" else argv[0]
        return self.answers.get(key, CommandResult(tuple(argv), 0, "", ""))


def provider(executor: Recorder, **batch: object) -> LsfProvider:
    cfg = parse_config(
        {
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "l",
                    "provider": "lsf",
                    "slot": {"cpus": 4, "memory_mb": 8000, "gpus": 1},
                    "walltime": "4h",
                    "batch": {"work_dir": "/tmp/cf", "partition": "normal", "account": "htc", **batch},
                }
            ],
        }
    )
    return LsfProvider(cfg.sites[0], cfg.pilot, executor, "campus")  # type: ignore[arg-type]


def test_submit_observe_cancel_flow() -> None:
    bsub = CommandResult(("bsub",), 0, (DATA / "lsf_bsub.txt").read_text(), "")
    bjobs = CommandResult(("bjobs",), 0, (DATA / "lsf_bjobs.json").read_text(), "")
    history = CommandResult(("bjobs",), 0, (DATA / "lsf_bjobs_a.json").read_text(), "")
    ex = Recorder({"bsub": bsub, "bjobs": bjobs, "bjobs -a": history})
    p = provider(ex)
    pilots = tuple(PilotRequest(f"l-{i}", 4, 8000, 0, 1, 14400.0) for i in range(3))
    sub = Submission("3c4d5e6f7a", "cf-campus-3c4d5e6f7a", pilots)
    done = asyncio.run(p.submit(sub))
    assert [s.job_id for s in done] == ["5022[1]", "5022[2]", "5022[3]"]
    argv, script = ex.calls[-1]
    assert argv == ["bsub"] and script is not None
    for line in (
        '#BSUB -J "cf-campus-3c4d5e6f7a[1-3]"',
        "#BSUB -o /tmp/cf/cf-campus-3c4d5e6f7a.%J.%I.out",
        "#BSUB -n 4",
        '#BSUB -R "span[hosts=1]"',
        '#BSUB -R "rusage[mem=8000]"',
        "#BSUB -W 240",
        "#BSUB -wa TERM",
        "#BSUB -wt 5",
        '#BSUB -gpu "num=1"',
        "#BSUB -q normal",
        "#BSUB -P htc",
    ):
        assert line in script.splitlines()
    assert "LSB_JOBINDEX" in script
    obs = asyncio.run(p.observe(["5022[2]", "5025", "5099"], "cf-campus-"))
    assert obs.statuses["5022[2]"].state is JobState.PENDING
    assert obs.statuses["5025"].state is JobState.CANCELLED and obs.statuses["5025"].from_accounting
    assert obs.statuses["5099"].state is JobState.GONE
    assert ["bjobs", "-a", "-json", "-o", "jobid jobindex stat exit_code job_name", "5025"] in [c for c, _ in ex.calls]
    assert {s.job_id for s in obs.tagged} >= {"5021", "5022[1]", "5024"}
    res = asyncio.run(p.cancel(["5022[1]"], graceful=True))
    assert res[0].ok and ex.calls[-1][0] == ["bkill", "-s", "TERM", "5022[1]"]


def test_empty_queue_and_text_mode() -> None:
    empty = CommandResult(("bjobs",), 255, "", "No unfinished job found\n")
    p = provider(Recorder({"bjobs": empty}), json_output=False)
    assert p.queue_argv()[:3] == ["bjobs", "-noheader", "-o"]
    obs = asyncio.run(p.observe([], "cf-campus-"))
    assert obs.statuses == {} and list(obs.tagged) == []
