"""A cycle costs what changed, not every pilot held: counted in SQL statements, never timed.

The loop keeps its live pilots in memory (``loop.live``), writes only the updates that change a
pilot, and the ledger reads and writes many pilots in one statement per 500.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campus_factory.domain import PilotRequest
from campus_factory.ledger import LIVE, Ledger, PilotEvent, PilotRecord, PilotState, Update
from campus_factory.loop.live import RECENT, LivePilots, _Newest, effective
from campus_factory.loop.usage import JobTracker
from campus_factory.pool.htcondor import RunningJob
from campus_factory.sim.bench_loop import QueryCounter, _Bench, run_loop_bench


def test_queries_per_cycle_do_not_grow_with_the_pilots_held(tmp_path: Path) -> None:
    # nothing ends at the sites: once the warm-up has filled every site, nothing changes
    small = run_loop_bench(100, ledger_url=f"sqlite:///{tmp_path}/a.sqlite", cycles=3, churn=0.0, warmup=4)
    large = run_loop_bench(2000, ledger_url=f"sqlite:///{tmp_path}/b.sqlite", cycles=3, churn=0.0, warmup=4)
    assert small.changed_per_cycle == large.changed_per_cycle == 0
    assert small.queries_per_cycle == large.queries_per_cycle
    assert large.queries_per_cycle < 100  # a few per site, none per pilot


def test_queries_grow_with_what_changed_only(tmp_path: Path) -> None:
    # with pilots ending, the extra statements are a few per site that changed (its observe's
    # update, its submission's inserts and update: 8), not one or more per pilot
    quiet = run_loop_bench(2000, ledger_url=f"sqlite:///{tmp_path}/a.sqlite", cycles=3, churn=0.0, warmup=4)
    busy = run_loop_bench(2000, ledger_url=f"sqlite:///{tmp_path}/b.sqlite", cycles=3, churn=0.01, warmup=4)
    assert busy.changed_per_cycle > 10
    assert busy.queries_per_cycle - quiet.queries_per_cycle <= 10 * 20


def test_the_live_pilots_in_memory_stay_those_of_the_ledger(tmp_path: Path) -> None:
    b = _Bench(400, f"sqlite:///{tmp_path}/l.sqlite", seed=3)
    b.factory.new_id = b.new_id  # type: ignore[method-assign]
    b.seed()
    for _ in range(5):
        b.clock.t += 60
        b.churn(0.05)
        b.sync_pool()
        report = asyncio.run(b.factory.run_once(demand=[]))
        assert not report.errors
    held = {p.pilot_id: p for p in b.factory.live.all()}
    assert held == {p.pilot_id: p for p in b.ledger.live_pilots("bench")}
    assert b.factory.live.all() == b.ledger.live_pilots("bench")  # in the ledger's order too
    for site in b.factory.config.sites:  # and each site's newest, ended ones included (its health)
        assert b.factory.live.of_site(site.name) == b.ledger.live_pilots("bench", site.name)
        newest = b.ledger.pilots(factory="bench", site=site.name, limit=RECENT)
        assert b.factory.live.recent(b.ledger, "bench", site.name) == newest
        assert any(p.state not in LIVE for p in newest)
    assert b.factory.live.loads == 1  # read once, then kept in step with the writes
    assert any(p.state is PilotState.JOINED for p in held.values())


def test_a_lapsed_lease_or_a_failed_cycle_reads_the_live_pilots_again(tmp_path: Path) -> None:
    b = _Bench(40, f"sqlite:///{tmp_path}/l.sqlite", seed=1)
    b.seed()
    asyncio.run(b.factory.run_once(demand=[]))
    b.clock.t += 60
    asyncio.run(b.factory.run_once(demand=[]))
    assert b.factory.live.loads == 1
    b.clock.t += 10 * 60  # longer than the lease: another factory may have acted meanwhile
    asyncio.run(b.factory.run_once(demand=[]))
    assert b.factory.live.loads == 2
    b.providers["site-00"].fail_observe = "boom"  # an error the cycle survives: still in step
    b.clock.t += 60
    asyncio.run(b.factory.run_once(demand=[]))
    assert b.factory.live.loads == 2
    b.factory.live.stale = True  # what a cycle that raised half-way leaves
    b.clock.t += 60
    asyncio.run(b.factory.run_once(demand=[]))
    assert b.factory.live.loads == 3


def _requests(n: int) -> list[PilotRequest]:
    return [PilotRequest(f"p{i:05d}", 1, 100, 100, 0, 3600.0) for i in range(n)]


def test_apply_reads_and_writes_many_pilots_in_a_few_statements(tmp_path: Path) -> None:
    led = Ledger.open(f"sqlite:///{tmp_path}/l.sqlite")
    reqs = _requests(1200)
    counter = QueryCounter(led)
    led.record_requests(factory="f", site="s", submission_id="sub", requests=reqs, now=1.0)
    assert counter.count <= 4  # begin, two inserts, commit
    counter.count = 0
    changed = led.apply([Update(r.pilot_id, PilotEvent.SUBMITTED, job_id=f"j{i}") for i, r in enumerate(reqs)], 2.0)
    assert len(changed) == 1200 and all(p.state is PilotState.QUEUED for p in changed)
    assert counter.count <= 7  # 3 reads of 500, one update, one insert of history, begin/commit
    assert led.pilot("p00007").job_id == "j7"  # type: ignore[union-attr]
    assert [t.to_state for t in led.transitions("p00007")] == [PilotState.REQUESTED, PilotState.QUEUED]


def test_effective_drops_only_updates_that_change_nothing(tmp_path: Path) -> None:
    led = Ledger.open(f"sqlite:///{tmp_path}/l.sqlite")
    led.record_requests(factory="f", site="s", submission_id="sub", requests=_requests(2), now=1.0)
    (a, b) = led.apply([Update(f"p0000{i}", PilotEvent.SUBMITTED, job_id=f"j{i}") for i in range(2)], 2.0)
    known = {a.pilot_id: a, b.pilot_id: b}
    ups = [
        Update(a.pilot_id, PilotEvent.PENDING),  # queued, seen pending: nothing
        Update(b.pilot_id, PilotEvent.STARTED),  # queued, seen running: a change
        Update(a.pilot_id, PilotEvent.PENDING, job_id="j9"),  # a new job id: a change
        Update("unknown", PilotEvent.PENDING),  # kept: the ledger reports it
    ]
    assert effective(ups, known) == ups[1:]


def test_live_pilots_follow_their_writes() -> None:
    live = LivePilots()
    assert live.stale and live.all() == []


def _record(pid: str, created: int, state: PilotState) -> PilotRecord:
    return PilotRecord(
        pid, "f", "s", "sub", None, None, state, 1, 1, 1, 0, 3600.0, float(created), 0.0, None, None, None, None, ""
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5), st.sampled_from(list(PilotState))), max_size=80),
    st.integers(1, 8),
)
def test_newest_pilots_are_kept_in_the_ledgers_order(writes: list[tuple[int, int, PilotState]], cap: int) -> None:
    """Live pilots (dropped when they end) and the ``cap`` newest of all: what sorting every
    record written would give, created-at ties by pilot id (a pilot keeps its created time)."""
    live, newest, created = _Newest(), _Newest(cap), {}
    latest: dict[str, PilotRecord] = {}
    for n, at, state in sorted(writes, key=lambda w: w[1]):  # created times never run backwards
        pid = f"p{n:02d}"
        r = _record(pid, created.setdefault(pid, at), state)
        latest[pid] = r
        live.put(r) if state in LIVE else live.drop(pid)
        newest.put(r)
        order = sorted(latest.values(), key=lambda p: (-p.created_at, p.pilot_id))
        assert live.ordered() == [p for p in order if p.state in LIVE]
        assert newest.ordered() == order[:cap]


@pytest.mark.parametrize("offset", [0, 3, 9])
def test_pilot_lists_are_paged_newest_first(tmp_path: Path, offset: int) -> None:
    led = Ledger.open(f"sqlite:///{tmp_path}/l.sqlite")
    for i in range(10):
        led.record_requests(factory="f", site="s", submission_id=f"s{i}", requests=[_requests(10)[i]], now=float(i))
    page = led.pilots(factory="f", limit=3, offset=offset)
    assert [p.pilot_id for p in page] == [f"p{i:05d}" for i in range(9 - offset, max(-1, 6 - offset), -1)]


class _Jobs:
    def __init__(self) -> None:
        self.running: list[RunningJob] = []

    def running_jobs(self) -> list[RunningJob]:
        return list(self.running)


def test_job_runs_are_written_only_when_they_begin_or_end(tmp_path: Path) -> None:
    led = Ledger.open(f"sqlite:///{tmp_path}/l.sqlite")
    led.record_requests(factory="f", site="s", submission_id="sub", requests=_requests(50), now=1.0)
    jobs = _Jobs()
    jobs.running = [RunningJob(f"p{i:05d}", f"s#{i}.0#1", "alice", "transparent", 10.0, 1) for i in range(50)]
    tracker = JobTracker(jobs)
    assert tracker.update(led, "f", 20.0, generation=1) == 50
    counter = QueryCounter(led)
    assert tracker.update(led, "f", 80.0, generation=1) == 0
    assert counter.count == 0  # nothing began or ended: the ledger is not asked
    jobs.running = jobs.running[1:]
    assert tracker.update(led, "f", 140.0, generation=1) == 1
    assert tracker.update(led, "f", 200.0, generation=2) == 0  # read again: the same open runs


def test_bench_loop_prints_the_figures_the_issue_asks_for(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from campus_factory.cli.main import cli

    url = f"sqlite:///{tmp_path}/l.sqlite"
    out = CliRunner().invoke(cli, ["bench", "loop", "--pilots", "60", "--cycles", "2", "--ledger", url, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {"pilots", "cycle_s_median", "cycle_s_p95", "rss_mb", "queries_per_cycle"} <= set(data)
    assert data["pilots"] == 60 and data["backend"] == "sqlite" and data["queries_per_cycle"] > 0
    again = CliRunner().invoke(cli, ["bench", "loop", "--pilots", "60", "--cycles", "2", "--ledger", url])
    assert again.exit_code != 0 and "already holds pilots" in again.output  # only an empty ledger


def test_the_loop_section_replaces_only_itself() -> None:
    from campus_factory.sim.bench_loop_table import MARK_END, MARK_START, replace_loop_section

    doc = f"# B\n\nplanner\n\n{MARK_START}\nold\n{MARK_END}\n\ntail\n"
    new = replace_loop_section(doc, f"{MARK_START}\nnew\n{MARK_END}")
    assert new == f"# B\n\nplanner\n\n{MARK_START}\nnew\n{MARK_END}\n\ntail\n"
    assert replace_loop_section("# B\n", "S") == "# B\n\nS\n"
