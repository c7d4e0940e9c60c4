"""Explain: per group and site, the match (false clauses), capacity, limit and pilots; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from campus_factory.cli.main import cli
from campus_factory.domain import JobGroup, PilotRequest
from campus_factory.ledger import Ledger, PilotEvent, Update
from campus_factory.planner import MatchCache, SiteSpec, explain_group, explain_plan, group_explanation, plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "campus.toml"
SNAPSHOT = ROOT / "examples" / "demand-snapshot.json"
NOW = 1_000_000.0


def test_group_explanation_names_the_false_clause_and_the_limit() -> None:
    sites = [SiteSpec("a", 4, 8000, max_submit_per_cycle=1), SiteSpec("b", 4, 8000)]
    cvmfs = JobGroup("cv", 3, requirements='TARGET.OpSys == "LINUX" && TARGET.HasCVMFS =?= true')
    many = JobGroup("many", 40, memory_mb=1000)
    cache = MatchCache()
    p = plan([cvmfs, many], sites, [], NOW, cache=cache)
    data = group_explanation(p, cvmfs, sites, cache)
    assert [r["match"] for r in data["sites"]] == ["no: job Requirements"] * 2
    assert data["sites"][0]["failed"] == [
        {"side": "job Requirements", "clause": "TARGET.HasCVMFS =?= true", "value": "false"}
    ]
    text = explain_group(p, many, sites, cache)
    assert "limit that held this group back: max_submit_per_cycle" in text
    assert "planned: 4 job(s), 0 into existing pilots, 1 new pilot(s)" in text
    assert "Held back:" in text
    whole = explain_plan(p)
    assert "cv -> nowhere: matches no site" in whole and "(bound by max_submit_per_cycle)" in whole


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_plan_explain_unmatched_group_from_the_example(tmp_path: Path) -> None:
    code, out = run(
        "-c", str(EXAMPLE), "plan", "explain", "--group", "dave-bigmem", "--demand-file", str(SNAPSHOT), "--no-ledger"
    )
    assert code == 0, out
    assert "matches no site: too big for 2 site(s)" in out
    assert "memory 256000 MB > 16000 MB" in out


def test_plan_explain_held_back_group_by_job_id(tmp_path: Path) -> None:
    code, out = run(
        "-c", str(EXAMPLE), "plan", "explain", "--job", "101.1", "--demand-file", str(SNAPSHOT), "--no-ledger"
    )
    assert code == 0, out
    assert "Job group alice-analysis" in out and "Held back: 40 job(s)" in out
    assert "limit that held this group back: max_queued" in out


def test_plan_explain_json_and_unknown_group(tmp_path: Path) -> None:
    code, out = run("-c", str(EXAMPLE), "plan", "explain", "--json", "--demand-file", str(SNAPSHOT), "--no-ledger")
    assert code == 0
    data = json.loads(out)
    assert {d["group"] for d in data} == {"alice-analysis", "bob-mc", "carol-train", "dave-bigmem"}
    code, out = run(
        "-c", str(EXAMPLE), "plan", "explain", "--group", "nope", "--demand-file", str(SNAPSHOT), "--no-ledger"
    )
    assert code == 1


def test_plan_show_counts_live_pilots_from_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.sqlite"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[factory]\nname = "t"\nledger_url = "{url}"\n[[sites]]\nname = "one"\nprovider = "fake"\n'
        "slot = { cpus = 4, memory_mb = 8000, sizing = 'fixed' }\nlimits = { max_pilots = 3, max_queued = 3 }\n",
        encoding="utf-8",
    )
    demand = tmp_path / "d.json"
    demand.write_text(json.dumps({"groups": [{"id": "g", "count": 8, "memory_mb": 1000}]}), encoding="utf-8")
    ledger = Ledger.open(url)
    ledger.record_requests(
        factory="t", site="one", submission_id="s", now=100.0, requests=[PilotRequest("one-p0", 4, 8000, 0, 0, 3600.0)]
    )
    ledger.apply([Update("one-p0", PilotEvent.SUBMITTED, job_id="1")], 101.0)
    ledger.close()
    code, out = run("-c", str(config), "plan", "show", "--demand-file", str(demand))
    assert code == 0, out
    assert "one: submit 1" in out and "supply 1 (of 1 alive)" in out
    code, out = run("-c", str(config), "plan", "show", "--json", "--demand-file", str(demand), "--no-ledger")
    assert json.loads(out)["sites"][0]["submit"] == 2
