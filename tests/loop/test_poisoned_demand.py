"""One poisoned job group costs only itself (issue 15, items 2, 4 and 10), through the real loop:
a demand of one poisoned group (each poison of the review) and one good group; every site still
gets the good group's pilots every cycle, with no cycle error. And a site answering the same job
id for two submissions never makes two pilots share a job. The sites are Slurm providers over a
recording executor (tests/reliability/fakes.py): nothing runs.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.reliability.fakes import RecordingSlurm

from campus_factory.config import parse_config
from campus_factory.demand import FileDemand, StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.providers.slurm import SlurmProvider
from campus_factory.transport.executor import CommandResult

GOOD = JobGroup("good", 40, cpus=1, memory_mb=100, disk_mb=0, owner="alice", requirements="TARGET.Memory >= 100")
DOUBLING = {"A0": "1", **{f"A{i}": f"(A{i - 1} + A{i - 1})" for i in range(1, 40)}}


def bad(**kw: Any) -> JobGroup:
    return JobGroup(**{"group_id": "bad", "count": 40, "cpus": 1, "memory_mb": 100, "disk_mb": 0, "owner": "eve", **kw})


GROUP_POISONS = {
    "400 clauses": bad(requirements=" && ".join(f"TARGET.Memory >= {i}" for i in range(400))),
    "9000 clauses": bad(requirements=" || ".join(f'TARGET.Owner == "u{i}"' for i in range(9000))),
    "doubling attributes": bad(requirements="A39 > 0", attributes=DOUBLING),
    "nesting 500": bad(requirements="(" * 500 + "true" + ")" * 500),
    "unparsable": bad(requirements="TARGET.Memory >"),
}
FILE_POISONS = {
    "owner lone surrogate": '{"id": "bad", "count": 40, "owner": "\\ud800"}',
    "cpus Infinity": '{"id": "bad", "count": 40, "cpus": Infinity}',
    "cpus 1e300": '{"id": "bad", "count": 40, "cpus": 1e300}',
    "count NaN": '{"id": "bad", "count": NaN}',
}
GOOD_JSON = '{"id": "good", "count": 40, "cpus": 1, "memory_mb": 100, "disk_mb": 0, "owner": "alice"}'


def factory(tmp_path: Path, demand: Any, executor: Any) -> Factory:
    name = "p" + uuid.uuid4().hex[:6]
    site = {
        "provider": "slurm",
        "walltime": "1h",
        "slot": {"cpus": 1, "memory_mb": 1000, "disk_mb": 0},
        "limits": {"max_pilots": 50, "max_queued": 50, "max_submit_per_cycle": 1},
    }
    cfg = parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite"},
            "pilot": {"payload": "command", "command": ["true"]},
            "sites": [{"name": "a", **site}, {"name": "b", **site}],
        }
    )
    providers = {s.name: SlurmProvider(s, cfg.pilot, executor, name) for s in cfg.sites}
    return Factory(cfg, Ledger.open(cfg.factory.ledger_url), demand, providers)


def pilots_at(f: Factory, site: str) -> int:
    return len(f.ledger.pilots(factory=f.name, site=site, limit=1000))


def every_site_served_every_cycle(f: Factory, cycles: int = 3) -> None:
    try:
        for i in range(cycles):
            before = {s: pilots_at(f, s) for s in ("a", "b")}
            report = asyncio.run(f.run_once())
            assert report.errors == [], (i, report.errors)
            assert report.submitted == 2, (i, report.plan and report.plan.groups)
            assert {s: pilots_at(f, s) for s in ("a", "b")} == {s: n + 1 for s, n in before.items()}
            assert report.plan is not None
            assert {g.group_id for g in report.plan.groups if g.pilots} == {"good"}
    finally:
        f.ledger.close()


@pytest.mark.parametrize("poison", sorted(GROUP_POISONS))
def test_a_poisoned_group_leaves_every_site_served(tmp_path: Path, poison: str) -> None:
    f = factory(tmp_path, StaticDemand([GROUP_POISONS[poison], GOOD]), RecordingSlurm())
    every_site_served_every_cycle(f)


@pytest.mark.parametrize("poison", sorted(FILE_POISONS))
def test_a_poisoned_group_in_a_demand_file_leaves_every_site_served(tmp_path: Path, poison: str) -> None:
    path = tmp_path / "demand.json"
    path.write_text('{"groups": [' + FILE_POISONS[poison] + ", " + GOOD_JSON + "]}")
    f = factory(tmp_path, FileDemand(path), RecordingSlurm())
    every_site_served_every_cycle(f)


class SameIdSlurm(RecordingSlurm):
    """sbatch answers job id 4242 to every submission (a broken wrapper, a cached answer)."""

    async def run(self, argv, *, timeout, stdin=None, env=None) -> CommandResult:  # type: ignore[override]
        result = await super().run(argv, timeout=timeout, stdin=stdin, env=env)
        if argv[0] == "sbatch":
            self.queue[-1] = "4242" + self.queue[-1][len(str(self.next_id)) :]
            return CommandResult(tuple(argv), 0, "4242\n", "")
        return result


def test_a_job_id_answered_twice_is_never_shared_by_two_pilots(tmp_path: Path) -> None:
    f = factory(tmp_path, StaticDemand([GOOD]), SameIdSlurm())
    try:
        first = asyncio.run(f.run_once())
        assert first.submitted == 2 and first.errors == []  # one 4242 at each site: two clusters
        second = asyncio.run(f.run_once())
        assert second.submitted == 0
        assert sorted(e.split(":", 1)[0] for e in second.errors) == ["a", "b"], second.errors
        assert all("other pilots hold" in e for e in second.errors)
        for site in ("a", "b"):
            live = [p for p in f.ledger.live_pilots(f.name, site) if p.job_id]
            assert [p.job_id for p in live] == ["4242"], live
            failed = [p for p in f.ledger.pilots(factory=f.name, site=site, limit=100) if p.state.value == "failed"]
            assert len(failed) == 1 and failed[0].job_id is None
    finally:
        f.ledger.close()
