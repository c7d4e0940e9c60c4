"""What batch systems print is checked before it is used (issue 15, items 8 and 11).

Job ids are matched in full against each backend's grammar: an id such as ``--user=root`` in a
queue listing is dropped from the observation and never reaches a command line; a cancel asked
for such an id runs nothing for it. No command runs: a replaying executor answers by command name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from campus_factory.config import parse_config
from campus_factory.errors import ProviderError
from campus_factory.providers._batch import BatchProvider
from campus_factory.providers.lsf import LsfProvider
from campus_factory.providers.pbs import pbs_provider
from campus_factory.providers.sge import SgeProvider
from campus_factory.providers.slurm import SlurmProvider
from campus_factory.transport.executor import CommandResult

TAG = "cf-campus-0123456789"
HOSTILE_IDS = ["--user=root", "-u", "5;rm -rf /", "5\n", "5 6", "$(id)", "5_", "", "5_1_2", "ALL", "1" * 40]


class Replay:
    """Answers each command by its name (the last path component of argv[0]); records argvs."""

    def __init__(self, answers: Mapping[str, tuple[int, str, str]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.argvs: list[list[str]] = []

    async def run(
        self, argv: Sequence[str], *, timeout: float, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        self.argvs.append(list(argv))
        rc, out, err = self.answers.get(argv[0].rsplit("/", 1)[-1], (0, "", ""))
        return CommandResult(tuple(argv), rc, out, err)


def make(kind: str, executor: Replay, **batch: Any) -> BatchProvider:
    provider, flavor = [*kind.split(":"), ""][:2]
    extra = {"pbs_flavor": flavor} if flavor else {}
    cfg = parse_config(
        {
            "pilot": {"payload": "command", "command": ["true"]},
            "sites": [
                {
                    "name": "s",
                    "provider": provider,
                    "slot": {"cpus": 1, "memory_mb": 1000},
                    "walltime": "1h",
                    "batch": {"work_dir": "/tmp/cf", **extra, **batch},
                }
            ],
        }
    )
    site = cfg.sites[0]
    if provider == "slurm":
        return SlurmProvider(site, cfg.pilot, executor, "campus")
    if provider == "sge":
        return SgeProvider(site, cfg.pilot, executor, "campus")
    if provider == "lsf":
        return LsfProvider(site, cfg.pilot, executor, "campus")
    return pbs_provider(site, cfg.pilot, executor, "campus")


def listing(kind: str, job_id: str) -> tuple[str, str]:
    """(command name, a queue listing holding one running job of ours with this id)."""
    if kind == "slurm":
        return "squeue", f"{job_id}|RUNNING|N/A|None|{TAG}\n"
    if kind == "sge":
        xml = (
            "<?xml version='1.0'?><job_info><queue_info><job_list state='running'>"
            f"<JB_job_number>{job_id}</JB_job_number><JB_name>{TAG}</JB_name><state>r</state>"
            "</job_list></queue_info></job_info>"
        )
        return "qstat", xml
    if kind == "lsf":
        number, _, index = job_id.rstrip("]").partition("[")
        return "bjobs", f"{number}|{index or 0}|RUN|-|{TAG}\n"
    return "qstat", f"Job Id: {job_id}\n    Job_Name = {TAG}\n    job_state = R\n"


KINDS = ["slurm", "sge", "lsf", "pbs:pbspro", "pbs:torque", "pbs:slurm"]
GOOD = {"slurm": "7_1", "sge": "7.1", "lsf": "7[1]", "pbs:pbspro": "7[1]", "pbs:torque": "7[1]", "pbs:slurm": "7"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", ["--user=root", "7 --me", "$(id)"])
def test_a_hostile_job_id_in_the_queue_never_reaches_a_command(kind: str, bad: str) -> None:
    name, text = listing(kind, bad)
    ex = Replay({name: (0, text, "")})
    p = make(kind, ex, json_output=False)
    try:
        obs = asyncio.run(p.observe([], "cf-campus-"))
    except ProviderError:
        pass  # an unreadable listing is a failed read: nothing from it is used either
    else:
        assert [s.job_id for s in obs.tagged] == []
    results = asyncio.run(p.cancel([bad, GOOD[kind]], graceful=True))
    assert {r.job_id: r.ok for r in results}[bad] is False
    assert all(bad not in argv and not any(bad in a for a in argv) for argv in ex.argvs), ex.argvs
    assert any(GOOD[kind] in argv or any(GOOD[kind] in a for a in argv) for argv in ex.argvs)


@pytest.mark.parametrize("kind", KINDS)
def test_a_good_job_id_is_observed(kind: str) -> None:
    name, text = listing(kind, GOOD[kind])
    p = make(kind, Replay({name: (0, text, "")}), json_output=False)
    obs = asyncio.run(p.observe([GOOD[kind]], "cf-campus-"))
    assert [s.job_id for s in obs.tagged] == [GOOD[kind]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), ids=st.lists(st.one_of(st.sampled_from(HOSTILE_IDS), st.text(max_size=12))))
def test_cancel_argv_holds_only_ids_of_the_backend_grammar(kind: str, ids: list[str]) -> None:
    ex = Replay()
    p = make(kind, ex)
    results = asyncio.run(p.cancel(ids, graceful=True))
    event(f"ids refused: {sum(not p.valid_id(j) for j in ids) > 0}")
    assert sorted(r.job_id for r in results) == sorted(ids)
    flags = {"--batch", "--signal=TERM", "--state=PENDING", "--state=RUNNING", "-s", "TERM"}
    for arg in {a for argv in ex.argvs for a in argv[1:]} - flags:
        assert all(p.valid_id(part) for part in arg.split(",")), (kind, arg)
    assert all(not r.ok for r in results if not p.valid_id(r.job_id))
