"""The loop with fake sites: observe -> plan -> act -> record, crash recovery, isolation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger, PilotState
from campus_factory.loop.factory import Factory
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.fake import FakeProvider


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, *sites: str, clock: Clock | None = None, **limits: int):
    clock = clock or Clock()
    data = {
        "factory": {"name": "t1", "ledger_url": f"sqlite:///{tmp_path}/l.sqlite", "submission_grace": 120},
        "sites": [
            {
                "name": s,
                "provider": "fake",
                "idle_timeout": 30,
                "slot": {"cpus": 4, "memory_mb": 8000, "sizing": "fixed"},  # whole-slot pilots
                "limits": {"max_pilots": 6, "max_queued": 4, "max_submit_per_cycle": 3, **limits},
            }
            for s in sites
        ],
    }
    cfg = parse_config(data)
    ledger = Ledger.open(cfg.factory.ledger_url)
    providers = {s: FakeProvider(s, clock=clock, start_delay=10) for s in sites}
    demand = StaticDemand()
    return Factory(cfg, ledger, demand, providers, clock=clock), providers, demand, clock


def group(n: int, cpus: int = 1, mem: int = 1000) -> JobGroup:
    return JobGroup(f"g{n}-{cpus}", n, cpus=cpus, memory_mb=mem)


def states(f: Factory) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in f.ledger.pilots(factory="t1"):
        out[p.state.value] = out.get(p.state.value, 0) + 1
    return out


def test_submits_within_limits_then_runs_then_cancels_when_demand_goes(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    demand.groups = [group(40)]  # 4 jobs per pilot -> 10 pilots wanted
    r = asyncio.run(f.run_once())
    assert r.submitted == 3  # max_submit_per_cycle
    assert r.plan is not None and r.plan.site("a").bound_by == "max_submit_per_cycle"
    r = asyncio.run(f.run_once())
    assert r.submitted == 1  # max_queued = 4
    assert states(f) == {"queued": 4}
    clock.t += 11
    r = asyncio.run(f.run_once())
    assert states(f) == {"running": 4, "queued": 2}  # running pilots free queue room
    assert r.submitted == 2  # max_pilots = 6
    clock.t += 11
    asyncio.run(f.run_once())
    assert states(f) == {"running": 6}
    demand.groups = []
    r = asyncio.run(f.run_once())
    assert r.cancelled == 0  # idle for 11 s < idle_timeout 30 s
    clock.t += 30
    r = asyncio.run(f.run_once())
    assert r.cancelled == 6
    asyncio.run(f.run_once())
    assert states(f) == {"ended": 6}
    assert not prov["a"].active()
    hist = [t.to_state.value for t in f.ledger.transitions(f.ledger.pilots(factory="t1")[0].pilot_id)]
    assert hist == ["requested", "queued", "running", "retiring", "ended"]


def test_queued_surplus_is_cancelled_plainly_newest_first(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    demand.groups = [group(12)]  # 3 pilots
    asyncio.run(f.run_once())
    assert states(f) == {"queued": 3}
    demand.groups = [group(4)]  # 1 pilot
    r = asyncio.run(f.run_once())
    assert r.cancelled == 2
    asyncio.run(f.run_once())
    assert states(f) == {"queued": 1, "cancelled": 2}


def test_crash_between_submit_and_ledger_write_is_adopted_not_resubmitted(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    demand.groups = [group(8)]  # 2 pilots
    real_submit = prov["a"].submit

    class Crash(BaseException):
        pass

    async def crashing(sub: Submission):
        await real_submit(sub)
        raise Crash()

    prov["a"].submit = crashing  # type: ignore[method-assign]
    with pytest.raises(Crash):
        asyncio.run(f.run_once())
    assert states(f) == {"requested": 2}
    assert len(prov["a"].active()) == 2
    prov["a"].submit = real_submit  # type: ignore[method-assign]
    # a restarted factory: new objects over the same ledger and site
    f2 = Factory(f.config, Ledger.open(f.config.factory.ledger_url), demand, prov, clock=clock)
    r = asyncio.run(f2.run_once())
    assert r.adopted == 2 and r.submitted == 0
    assert states(f2) == {"queued": 2}
    assert {p.job_id for p in f2.ledger.pilots(factory="t1")} == {j.job_id for j in prov["a"].active()}


def test_unknown_job_with_our_tag_is_cancelled_and_other_factories_are_left_alone(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    stranger = Submission("0123456789", "cf-t1-0123456789", ())
    other = Submission("abcdefabcd", "cf-t1-x-abcdefabcd", ())  # factory "t1-x" shares the prefix
    from campus_factory.domain import PilotRequest

    req = PilotRequest("x-1", 1, 100, 0, 0, 60)
    asyncio.run(prov["a"].submit(Submission(stranger.submission_id, stranger.tag, (req,))))
    asyncio.run(prov["a"].submit(Submission(other.submission_id, other.tag, (req,))))
    r = asyncio.run(f.run_once())
    assert r.orphans_cancelled == 1
    left = prov["a"].active()
    assert [j.tag for j in left] == ["cf-t1-x-abcdefabcd"]


def test_requested_pilot_never_seen_fails_after_grace(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    from campus_factory.domain import PilotRequest

    f.ledger.record_requests(
        factory="t1",
        site="a",
        submission_id="ffffffffff",
        requests=[PilotRequest("a-lost", 4, 8000, 0, 0, 60)],
        now=clock.t,
    )
    asyncio.run(f.run_once())
    assert f.ledger.pilot("a-lost").state is PilotState.REQUESTED  # type: ignore[union-attr]
    clock.t += 121
    asyncio.run(f.run_once())
    assert f.ledger.pilot("a-lost").state is PilotState.FAILED  # type: ignore[union-attr]


def test_failing_site_is_isolated(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "bad", "good")
    demand.groups = [group(4, cpus=4), group(4, cpus=2)]
    prov["bad"].fail_observe = "slurm_load_jobs error: Unable to contact slurm controller"
    r = asyncio.run(f.run_once())
    assert any("bad" in e and "Unable to contact" in e for e in r.errors)
    assert r.plan is not None and r.plan.site("bad").submit == 0
    assert r.plan.site("bad").bound_by == "unhealthy"
    # the groups placed at 'bad' are not moved: first-fit puts everything on 'bad' when healthy,
    # and when it is unhealthy the planner falls through to 'good'
    assert r.plan.site("good").submit > 0
    assert len(prov["good"].active()) == r.plan.site("good").submit


def test_submit_failure_is_recorded_with_its_message(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    demand.groups = [group(4)]
    prov["a"].fail_submit = "sbatch: error: Batch job submission failed: Invalid account"
    r = asyncio.run(f.run_once())
    assert r.submitted == 0 and any("Invalid account" in e for e in r.errors)
    (p,) = f.ledger.pilots(factory="t1")
    assert p.state is PilotState.FAILED and "Invalid account" in p.reason


def test_jobs_gone_from_queue_are_read_from_accounting(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    demand.groups = [group(4)]
    asyncio.run(f.run_once())
    (p,) = f.ledger.pilots(factory="t1")
    assert p.job_id is not None
    prov["a"].finish(p.job_id, JobState.FAILED, exit_code=3)
    clock.t += 400  # past min_job_age: only accounting knows it
    demand.groups = []
    asyncio.run(f.run_once())
    p2 = f.ledger.pilot(p.pilot_id)
    assert p2 is not None and p2.state is PilotState.FAILED and p2.exit_code == 3
    assert "from accounting" in p2.reason


def test_dry_run_contacts_no_site_and_writes_nothing(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "a")
    demand.groups = [group(4)]
    r = asyncio.run(f.run_once(dry_run=True))
    assert r.plan is not None and r.plan.site("a").submit == 1
    assert prov["a"].submit_calls == 0 and prov["a"].observe_calls == 0
    assert f.ledger.pilots() == [] and f.ledger.last_cycle("t1") is None


def test_a_provider_bug_harms_only_its_site(tmp_path: Path) -> None:
    f, prov, demand, clock = make(tmp_path, "bad", "good")
    demand.groups = [group(4, cpus=4), group(4, cpus=2)]

    async def broken(job_ids, tag_prefix):  # type: ignore[no-untyped-def]
        raise KeyError("a bug in a provider")

    prov["bad"].observe = broken  # type: ignore[method-assign]
    r = asyncio.run(f.run_once())
    assert any(e.startswith("bad: observe failed unexpectedly: KeyError") for e in r.errors)
    assert r.plan is not None and r.plan.site("good").submit > 0
