"""The simulator's commands: demo, simulate, bench provisioning (JSON shape), the demo files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from campus_factory.cli.main import cli
from campus_factory.sim.bench_provisioning import MARK_END, MARK_START, replace_section
from campus_factory.sim.scenario import DEMO_CAMPUS_TOML, load_scenario, whole_slot_variant
from campus_factory.sim.workloads import JobSpec

ROOT = Path(__file__).parents[2]
DATA = Path(__file__).parent / "data"


def test_demo_writes_a_report_and_a_chart(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["demo", "--jobs", "150", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "job wait: p50" in res.output and "spend $" in res.output
    # the baselines beside the default, and each target explained in one line
    assert "the same burst on the same campus, three policies:" in res.output
    for policy in ("ours", "original", "cobald"):
        assert f"\n{policy} " in res.output
    assert "waste <= 5 %:" in res.output and "wait p50 <= 1 x pilot start latency" in res.output
    assert "wait p95 <= cobald's" in res.output and " - the slowest jobs wait no longer than" in res.output
    for site in ("hpc", "campus", "cloud"):
        assert f"\n{site} " in res.output
    assert "jobs idle" in res.output  # the progress lines (stderr is mixed in by CliRunner)
    png, page = tmp_path / "demo-ours.png", tmp_path / "demo-ours.html"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in page.read_text()


def test_demo_json_report(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["demo", "--jobs", "100", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["jobs"] == 100 and set(data["sites"]) == {"hpc", "campus", "cloud"}
    assert set(data["baselines"]) == {"original", "cobald"} and data["baselines"]["cobald"]["jobs"] == 100
    assert data["wasted_core_h"] == data["delivered_core_h"] - data["used_core_h"]


def test_simulate_runs_a_config_and_a_workload(tmp_path: Path) -> None:
    for workload in (DATA / "sample.csv", DATA / "sample.swf"):
        res = CliRunner().invoke(
            cli,
            [
                "simulate",
                "--config",
                str(ROOT / "examples/demo/campus.toml"),
                "--workload",
                str(workload),
                "--out",
                str(tmp_path),
                "--json",
            ],
        )
        assert res.exit_code == 0, res.stderr
        data = json.loads(res.stdout)
        assert data["jobs"] in (4, 5)
        assert data["jobs_completed"] == data["jobs"] - data["jobs_matching_no_site"]
    assert (tmp_path / "campus-ours.png").exists()


def test_bench_provisioning_json_shape() -> None:
    res = CliRunner().invoke(
        cli,
        [
            "bench",
            "provisioning",
            "--json",
            "--day-jobs",
            "60",
            "--burst-jobs",
            "40",
            "--hours",
            "0.5",
            "--extra",
            "none",
        ],
    )
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data["policies"]) == {"original", "cobald", "ours", "ours-whole"}
    for figures in data["policies"].values():
        for key in ("waste_pct", "wait_p50_s", "wait_p95_s", "cost"):
            assert isinstance(figures[key], int | float)
        assert 0 <= figures["waste_pct"] <= 100
    assert set(data["workloads"]) == {"day", "burst"} and data["extra_workloads"] == {}


def test_provisioning_section_is_replaced_not_duplicated() -> None:
    doc = "# Benchmarks\n\n<!-- bench:planner:start -->\nplanner\n<!-- bench:planner:end -->\n"
    once = replace_section(doc, f"{MARK_START}\nA\n{MARK_END}")
    twice = replace_section(once, f"{MARK_START}\nB\n{MARK_END}")
    assert "planner" in twice and "B" in twice and "A" not in twice.replace("Benchmarks", "")
    assert twice.count(MARK_START) == 1


def test_example_demo_files_are_the_built_in_demo() -> None:
    assert (ROOT / "examples/demo/campus.toml").read_text() == DEMO_CAMPUS_TOML
    base = tomllib.loads(DEMO_CAMPUS_TOML)
    whatif = load_scenario(ROOT / "examples/demo/whatif-more-cloud.toml")
    cloud = whatif.config.site("cloud")
    assert cloud.limits.max_pilots * cloud.slot.cpus - 50 * 8 == 200
    assert len(base["sites"]) == 3
    assert (ROOT / "examples/demo/burst.csv").read_text().startswith("submit,runtime,cpus,memory_mb")


def test_the_whole_slot_what_if_is_the_demo_campus_with_fixed_pilots() -> None:
    built = whole_slot_variant(tomllib.loads(DEMO_CAMPUS_TOML))
    assert tomllib.loads((ROOT / "examples/demo/whatif-whole-slot.toml").read_text()) == built
    for before, after in zip(tomllib.loads(DEMO_CAMPUS_TOML)["sites"], built["sites"], strict=True):
        assert after["slot"]["sizing"] == "fixed" and "sizing" not in before["slot"]
        assert after["limits"] == before["limits"]
    assert load_scenario(ROOT / "examples/demo/whatif-whole-slot.toml").config.site("hpc").sizing == "fixed"


def test_the_two_more_workloads_of_the_benchmarks_load_with_their_shapes() -> None:
    from campus_factory.sim.workloads import load_workload

    short = load_workload(ROOT / "examples/demo/short-singles.csv")
    heavy = load_workload(ROOT / "examples/demo/heavy-tail-mix.csv")
    assert len(short) == 4000 and {j.cpus for j in short} == {1}
    assert len(heavy) == 1500 and {1, 4, 8} <= {j.cpus for j in heavy}
    assert max(j.runtime_s for j in heavy) > 6 * 3600  # a heavy tail, beyond a campus pilot's walltime


def test_the_two_more_workloads_are_generated_from_their_seeds() -> None:
    """The bench generates them; the example files are the same jobs (as write_csv rounds them)."""
    from campus_factory.sim.workloads import heavy_tail_workload, load_workload, short_singles_workload

    def rows(jobs: list[JobSpec]) -> list[tuple[object, ...]]:
        return [
            (round(j.submit_s), round(j.runtime_s), j.cpus, j.memory_mb, j.gpus, j.owner, j.requirements) for j in jobs
        ]

    assert rows(short_singles_workload()) == rows(load_workload(ROOT / "examples/demo/short-singles.csv"))
    assert rows(heavy_tail_workload()) == rows(load_workload(ROOT / "examples/demo/heavy-tail-mix.csv"))
