"""Synthetic planner inputs and the planner benchmark (a small size)."""

from __future__ import annotations

from campus_factory.planner import MatchCache, plan
from campus_factory.sim.bench_planner import MARK_END, MARK_START, render_markdown, replace_section, run_planner_bench
from campus_factory.sim.synthetic import synthetic_demand, synthetic_pilots, synthetic_sites

NOW = 1_800_000_000.0


def test_demand_sums_and_is_deterministic() -> None:
    a = synthetic_demand(5000, 120, seed=3)
    assert len(a) == 120 and sum(g.count for g in a) == 5000
    assert a == synthetic_demand(5000, 120, seed=3)
    assert a != synthetic_demand(5000, 120, seed=4)
    assert any(g.gpus for g in synthetic_demand(20000, 500))
    assert len({g.requirements for g in a}) > 5


def test_sites_and_pilots_are_varied_and_plannable() -> None:
    sites = synthetic_sites(12, seed=2)
    assert len({s.name for s in sites}) == 12 and any(s.gpus for s in sites)
    assert any("member(TARGET.Owner" in (s.slot_ad.get("START") or "") for s in sites)  # type: ignore[union-attr]
    pilots = synthetic_pilots(sites, NOW, seed=2)
    demand = synthetic_demand(3000, 80, seed=2)
    p = plan(demand, sites, pilots, NOW, cache=MatchCache())
    assert p.total_submit > 0
    assert any(d.matched for d in p.groups) and any(not d.matched for d in p.groups)


def test_small_bench_and_the_docs_section() -> None:
    r = run_planner_bench(jobs=2000, groups=40, sites=5, runs=2)
    assert r.jobs == 2000 and r.groups == 40 and len(r.cold_times_s) == 2
    assert r.cold_median_s > 0 and r.peak_rss_mb > 0
    section = render_markdown(r, "campus-factory bench planner ...", "test machine", "2026-01-01")
    assert section.startswith(MARK_START) and section.endswith(MARK_END)
    doc = "# Benchmarks\n\nintro\n"
    once = replace_section(doc, section)
    assert once.count(MARK_START) == 1 and once.startswith("# Benchmarks")
    assert replace_section(once, section.replace("test machine", "other")).count("other") == 1


def test_bench_command_writes_the_planner_section(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from campus_factory.cli.main import cli

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nOther sections stay.\n", encoding="utf-8")
    args = ["bench", "planner", "--jobs", "500", "--groups", "10", "--sites", "3", "--runs", "1", "--write", str(doc)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0 and "cold (new cache) median" in result.output
    text = doc.read_text(encoding="utf-8")
    assert "Other sections stay." in text and "## Planner" in text and "--jobs 500" in text
