"""The provisioning bench's report: the extra workloads' table and targets, from plain results;
and the figures of a small day and burst under ours, pinned for the seed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from campus_factory.cli.main import cli
from campus_factory.sim.bench_provisioning import (
    EXTRA_WORKLOADS,
    ProvisioningBench,
    bench_workloads,
    extra_target_lines,
    extra_workloads,
    render_markdown,
    run_provisioning_bench,
    target_lines,
)


def _s(waste: float, p50: float, p95: float, cost: float, latency: float = 180.0) -> dict[str, Any]:
    return {
        "waste_pct": waste,
        "wait_p50_s": p50,
        "wait_p95_s": p95,
        "cost": cost,
        "start_latency_p50_s": latency,
        "delivered_core_h": 100.0,
        "wasted_core_h": waste,
        "booting_core_h": 1.0,
        "empty_pilot_core_h": 2.0,
        "partly_used_core_h": 0.0,
    }


def _bench() -> ProvisioningBench:
    pooled = {
        "cobald": _s(30.0, 180, 1583, 167.8),
        "ours": _s(4.0, 190, 1200, 140.0, latency=197),
        "ours-whole": _s(32.0, 129, 784, 183.4),
    }
    bench = ProvisioningBench({"day": 10, "burst": 5}, policies=pooled)
    bench.runs = {"day": pooled, "burst": pooled}
    bench.extra = {"short-singles": 4000, "heavy-tail": 1500}
    bench.extra_runs = {
        "short-singles": {
            "cobald": _s(47.1, 209, 479, 4.50),
            "ours": _s(7.4, 17, 201, 8.80, latency=178),  # waste within 1.5 x 5 %; spend above ours-whole
            "ours-whole": _s(49.7, 11, 209, 8.60),
        },
        "heavy-tail": {
            "cobald": _s(17.5, 4312, 16211, 192.0),
            "ours": _s(0.7, 1063, 10641, 136.1, latency=176),  # p50 beyond 1.5 x 176 s
            "ours-whole": _s(12.9, 985, 12402, 186.7),
        },
    }
    return bench


def test_the_extra_workloads_table_and_targets_are_rendered_from_the_results() -> None:
    text = render_markdown(_bench(), "campus-factory bench provisioning", "test machine", "2026-01-01", "img/p.png")
    assert "| short-singles | ours | 7.4 % | 17 s | 201 s | $8.80 | 178 s |" in text
    assert "| heavy-tail | cobald | 17.5 % | 4312 s | 16211 s | $192.00 | 180 s |" in text
    assert "Targets for ours on short-singles:" in text and "Targets for ours on heavy-tail:" in text
    # the pooled targets keep their factor 1; the extra ones are relaxed, spend is not
    assert "- waste at most 5 % of delivered core-hours: **met** (4.0 %)" in text
    assert "- waste at most 7.5 % of delivered core-hours (within 1.5 x): **met** (7.4 %)" in text
    assert "- spend no higher than ours-whole ($8.60): **not met** ($8.80)" in text
    assert "- job wait p50 at most 1.5 x the pilot start latency p50 (264 s): **not met** (1063 s)" in text
    assert "- job wait p95 no worse than 1.5 x cobald's (24316 s): **met** (10641 s)" in text
    for name in EXTRA_WORKLOADS:
        assert f"**{name}** (" in text
    assert text.index("Targets for ours:") < text.index(
        "| workload | policy | waste | wait p50 | wait p95 | spend | pilot"
    )


def test_target_lines_within_a_factor() -> None:
    per = {"ours": _s(7.6, 100, 100, 1.0, latency=100), "cobald": _s(0, 0, 80, 0)}
    lines = extra_target_lines("w", per)
    assert lines[0] == "Targets for ours on w:"
    assert "**not met** (7.6 %)" in lines[2] and "(150 s): **met** (100 s)" in lines[3]
    assert "(120 s): **met** (100 s)" in lines[4] and len(lines) == 5  # no ours-whole: no spend line
    assert target_lines({}, "ours") == []


def test_the_extra_workloads_scale_and_unknown_names_are_refused() -> None:
    small = extra_workloads(["short-singles", "heavy-tail"], 0.01)
    assert len(small["short-singles"]) == 40 and len(small["heavy-tail"]) == 15
    assert max(j.submit_s for j in small["short-singles"]) <= 0.06 * 3600 + 1800
    with pytest.raises(ValueError, match="unknown workload"):
        extra_workloads(["nope"])


def test_the_bench_runs_the_extra_workloads_it_is_given() -> None:
    args = ["bench", "provisioning", "--json", "--day-jobs", "30", "--burst-jobs", "20", "--hours", "0.25"]
    res = CliRunner().invoke(cli, [*args, "--no-whole", "--extra", "short-singles", "--extra-scale", "0.01"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data["extra_workloads"]) == {"short-singles"}
    one = data["extra_workloads"]["short-singles"]
    assert one["jobs"] == 40 and set(one["policies"]) == {"original", "cobald", "ours"}
    assert data["targets"]["extra_workloads_factor"] == 1.5
    assert set(data["workloads"]) == {"day", "burst"}  # the extra ones are not pooled


#: ours on a small day and burst (600 and 300 jobs, seed 1): a change meant only to make the
#: simulation (or the loop, planner and ledger it drives) faster leaves every figure as it is;
#: one that changes what the planner does updates them here and says why in its commit
PINNED = {
    "booting_core_h": 58.2,
    "cost": 26.93,
    "delivered_core_h": 2284.6,
    "empty_pilot_core_h": 42.9,
    "partly_used_core_h": 0.0,
    "start_latency_p50_s": 188.7,
    "wait_p50_s": 266.2,
    "wait_p95_s": 1516.8,
    "waste_pct": 4.425,
    "wasted_core_h": 101.1,
}


def test_a_small_day_and_burst_under_ours_give_the_pinned_figures() -> None:
    bench = run_provisioning_bench(bench_workloads(600, 300, 2.0, seed=1), policies=("ours",))
    assert bench.policies["ours"] == PINNED
    day, burst = bench.runs["day"]["ours"], bench.runs["burst"]["ours"]
    assert (round(day["wait_p50_s"], 1), round(day["wait_p95_s"], 1), round(day["cost"], 2)) == (232.1, 427.5, 11.78)
    assert (round(burst["wait_p50_s"], 1), round(burst["cost"], 2)) == (842.3, 15.15)
