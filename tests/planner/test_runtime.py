"""The runtime assumed for a job group: declared > learned from 3+ recorded runs > the site's
job_runtime; how it changes which running pilots count as capacity; what explain shows."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from campus_factory.cli.main import cli
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.ledger import Ledger
from campus_factory.ledger.accounting import JobRun, record_pilot_jobs
from campus_factory.planner import PilotView, SiteSpec, explain_group, explain_plan, plan
from campus_factory.planner.runtime import (
    LAST_RUNS,
    MAX_RUNTIME_S,
    MIN_RUNS,
    group_runtime,
    median_runtimes,
    runtime_note,
    with_learned_runtimes,
)

NOW = 1_000_000.0
SITE = SiteSpec("a", 4, 8000, walltime_s=8 * 3600.0, job_runtime_s=1800.0)


def _pilot(life_left: float) -> PilotView:
    """A running pilot with 3 free cores that leaves in ``life_left`` seconds."""
    return PilotView("p1", "a", "joined", NOW - 600, True, True, 3, 6000, None, 0, NOW + life_left, 4, 8000, 0, 0)


def test_a_declared_runtime_wins_over_a_learned_one() -> None:
    g = JobGroup("g", 1, attributes={"MaxWallTimeMins": "60"}, learned_runs=10, learned_runtime_s=120.0)
    assert group_runtime(g) == 3600.0
    assert runtime_note(g, [SITE]) == "declared: 3600 s"


def test_a_learned_median_needs_enough_runs() -> None:
    few = JobGroup("g", 1, learned_runs=MIN_RUNS - 1, learned_runtime_s=120.0)
    enough = JobGroup("g", 1, learned_runs=MIN_RUNS, learned_runtime_s=120.0)
    assert group_runtime(few) is None  # the site's job_runtime
    assert runtime_note(few, [SITE]) == "site default (job_runtime 1800 s); 2 run(s) recorded, 3 needed to learn"
    assert group_runtime(enough) == 120.0
    assert runtime_note(enough, [SITE]) == "learned from 3 runs: median 120 s"
    assert runtime_note(JobGroup("g", 1), [SITE, SiteSpec("b", 4, 8000, job_runtime_s=600.0)]) == (
        "site default (job_runtime 600 s / 1800 s)"
    )


def test_a_learned_short_runtime_lets_a_pilot_near_its_end_take_the_job() -> None:
    """1000 s left: too little for the site's assumed 1800 s, enough for a learned 300 s."""
    unknown = JobGroup("g", 1, owner="alice")
    learned = with_learned_runtimes([unknown], {"g": (5, 300.0)})[0]
    before = plan([unknown], [SITE], [_pilot(1000.0)], NOW).group("g")
    after = plan([learned], [SITE], [_pilot(1000.0)], NOW).group("g")
    assert (before.placements[0].into_existing, before.pilots) == (0, 1)
    assert (after.placements[0].into_existing, after.pilots) == (1, 0)
    assert after.runtime == "learned from 5 runs: median 300 s"
    assert before.runtime == "site default (job_runtime 1800 s)"


def test_explain_shows_the_runtime_used_and_its_source() -> None:
    groups = [
        JobGroup("declared", 1, attributes={"MaxWallTimeMins": "30"}),
        JobGroup("learned", 1, learned_runs=7, learned_runtime_s=412.4),
        JobGroup("default", 1),
    ]
    p = plan(groups, [SITE], [], NOW)
    text = explain_plan(p)
    assert "  declared -> a: " in text and "    - runtime: declared: 1800 s" in text
    assert "    - runtime: learned from 7 runs: median 412 s" in text
    assert "    - runtime: site default (job_runtime 1800 s)" in text
    assert "  Runtime: learned from 7 runs: median 412 s" in explain_group(p, groups[1], [SITE])


def test_the_median_is_of_each_groups_most_recent_runs() -> None:
    old = [("g", float(i), float(i) + 1000.0) for i in range(30)]  # 1000 s each, ended long ago
    new = [("g", 1e5 + i, 1e5 + i + 100.0) for i in range(LAST_RUNS)]  # the latest: 100 s
    assert median_runtimes(old + new) == {"g": (LAST_RUNS, 100.0)}
    assert median_runtimes([("g", 0.0, 10.0), ("g", 0.0, 20.0), ("h", 5.0, 35.0)]) == {
        "g": (2, 15.0),
        "h": (1, 30.0),
    }


def test_absurd_durations_are_ignored() -> None:
    runs = [
        ("g", 100.0, 50.0),  # ended before it began
        ("g", 100.0, 100.0),  # no time at all
        ("g", 0.0, MAX_RUNTIME_S + 1),  # longer than any real run
        ("g", 0.0, math.inf),
        ("g", math.nan, 10.0),
        ("g", 0.0, 60.0),
    ]
    assert median_runtimes(runs) == {"g": (1, 60.0)}
    assert median_runtimes(runs[:-1]) == {}


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
times = st.one_of(finite, st.sampled_from([math.nan, math.inf, -math.inf]))


@given(st.lists(st.tuples(st.sampled_from(["g", "h"]), times, times), max_size=60))
def test_learned_runtimes_stay_within_bounds(runs: list[tuple[str, float, float]]) -> None:
    """Whatever the ledger holds, a learned runtime is a real duration, and the plan takes it."""
    learned = median_runtimes(runs)
    for n, seconds in learned.values():
        assert 1 <= n <= LAST_RUNS
        assert 0.0 < seconds <= MAX_RUNTIME_S
    groups = with_learned_runtimes([JobGroup("g", 2), JobGroup("h", 1, cpus=2)], learned)
    for g in groups:
        r = group_runtime(g)
        assert r is None or 0.0 < r <= MAX_RUNTIME_S
    p = plan(groups, [SITE], [_pilot(1000.0)], NOW)
    assert all(d.runtime for d in p.groups)


@given(st.integers(min_value=-5, max_value=50), st.floats(allow_nan=True, allow_infinity=True))
def test_a_group_handed_a_bad_learned_figure_falls_back_to_the_site(runs: int, seconds: float) -> None:
    g = JobGroup("g", 1, learned_runs=runs, learned_runtime_s=seconds)
    r = group_runtime(g)
    if r is not None:
        assert runs >= MIN_RUNS and 0.0 < r <= MAX_RUNTIME_S
    else:
        assert runtime_note(g, [SITE]).startswith("site default")


def test_plan_explain_shows_the_runtime_learned_from_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.sqlite"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[factory]\nname = "t"\nledger_url = "{url}"\n[[sites]]\nname = "one"\nprovider = "fake"\n'
        "slot = { cpus = 4, memory_mb = 8000, sizing = 'fixed' }\n",
        encoding="utf-8",
    )
    groups = [{"id": "g", "count": 2, "memory_mb": 1000}, {"id": "h", "count": 1, "memory_mb": 1000}]
    demand = tmp_path / "d.json"
    demand.write_text(json.dumps({"groups": groups}), encoding="utf-8")
    ledger = Ledger.open(url)
    t = time.time() - 3600  # the command plans at the real clock: runs of the last hour
    ledger.record_requests(
        factory="t", site="one", submission_id="s", now=t, requests=[PilotRequest("one-p0", 4, 8000, 0, 0, 3600.0)]
    )
    runs = [JobRun("one-p0", f"sched#{i}.0#1", "u", "transparent", t + i, t + 2 * i + 240, 1, "g") for i in range(3)]
    record_pilot_jobs(ledger, runs)
    ledger.close()
    result = CliRunner().invoke(cli, ["-c", str(config), "plan", "explain", "--demand-file", str(demand)])
    assert result.exit_code == 0, result.output
    assert "Job group g " in result.output and "  Runtime: learned from 3 runs: median 241 s" in result.output
    assert "  Runtime: site default (job_runtime 1800 s)" in result.output  # h: no runs
