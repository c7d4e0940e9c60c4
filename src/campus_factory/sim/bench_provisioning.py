"""The provisioning benchmark: three policies on the same campus and the same workloads.

Policies (:mod:`.policies`): ``original`` (the original Campus Factory rule), ``cobald`` (a
utilisation-feedback controller in the style of COBalD) and ``ours`` (the real planner). Each
runs the simulated demo campus (:func:`.scenario.demo_scenario`) on each workload with the same
seed; per policy the figures are pooled over the workloads: wasted pilot core-hours as a share
of delivered ones, job wait p50/p95 (over every job that started) and spend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine import Scenario, SimResult, Simulation
from .policies import POLICIES, make_policy
from .report import WAIT_TARGET_FACTOR, WASTE_TARGET_PCT, quantile, summarize
from .scenario import demo_scenario, demo_workload
from .workloads import JobSpec, bursty_workload

__all__ = [
    "MARK_END",
    "MARK_START",
    "ProvisioningBench",
    "bench_workloads",
    "render_markdown",
    "replace_section",
    "run_provisioning_bench",
    "target_lines",
]

MARK_START = "<!-- bench:provisioning:start -->"
MARK_END = "<!-- bench:provisioning:end -->"


@dataclass
class ProvisioningBench:
    """Results of every (workload, policy) run and the pooled figures per policy."""

    workloads: dict[str, int]
    runs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    policies: dict[str, dict[str, float]] = field(default_factory=dict)
    wall_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "policies": self.policies,
            "workloads": {
                name: {"jobs": jobs, "policies": {p: _short(s) for p, s in self.runs[name].items()}}
                for name, jobs in self.workloads.items()
            },
            "targets": {"waste_pct_max": WASTE_TARGET_PCT, "wait_p50_max_factor_of_start_latency": WAIT_TARGET_FACTOR},
            "wall_s": self.wall_s,
        }


def _short(s: dict[str, Any]) -> dict[str, float]:
    keys = ("waste_pct", "wait_p50_s", "wait_p95_s", "cost", "delivered_core_h", "wasted_core_h", "start_latency_p50_s")
    return {k: round(float(s[k]), 3) for k in keys}


def bench_workloads(
    day_jobs: int = 10_000, burst_jobs: int = 3000, hours: float = 24.0, seed: int = 1
) -> dict[str, list[JobSpec]]:
    """A bursty day and the demo burst."""
    return {
        "day": bursty_workload(day_jobs, hours, seed=seed),
        "burst": demo_workload(burst_jobs, seed=seed),
    }


def _pooled(results: Sequence[SimResult], summaries: Sequence[dict[str, Any]]) -> dict[str, float]:
    waits = [j.first_start - j.submit_at for r in results for j in r.jobs if j.first_start is not None]
    latency = [p.joined_at - p.submitted_at for r in results for p in r.pilots if p.joined_at is not None]
    delivered = sum(s["delivered_core_h"] for s in summaries)
    wasted = sum(s["wasted_core_h"] for s in summaries)
    return {
        "waste_pct": round(100 * wasted / delivered if delivered else 0.0, 3),
        "wait_p50_s": round(quantile(waits, 0.5), 1),
        "wait_p95_s": round(quantile(waits, 0.95), 1),
        "cost": round(sum(s["cost"] for s in summaries), 2),
        "delivered_core_h": round(delivered, 1),
        "wasted_core_h": round(wasted, 1),
        "start_latency_p50_s": round(quantile(latency, 0.5), 1),
        **{k: round(sum(s["waste_breakdown"][k] for s in summaries), 1) for k in _BREAKDOWN},
    }


_BREAKDOWN = ("booting_core_h", "empty_pilot_core_h", "partly_used_core_h")


def run_provisioning_bench(
    workloads: dict[str, list[JobSpec]] | None = None,
    *,
    scenario: Scenario | None = None,
    policies: Sequence[str] = POLICIES,
    variants: Mapping[str, tuple[str, Scenario]] | None = None,
    on_run: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> ProvisioningBench:
    """Run every policy on every workload (same scenario, same seed); then each variant, a row
    of its own: a policy on another scenario (e.g. ``ours-whole``: ours with whole-slot pilots)."""
    wl = workloads if workloads is not None else bench_workloads()
    sc = scenario or demo_scenario()
    bench = ProvisioningBench({name: len(jobs) for name, jobs in wl.items()})
    rows = [(p, p, sc) for p in policies] + [(row, p, s) for row, (p, s) in (variants or {}).items()]
    for row, policy, scen in rows:
        results, summaries = [], []
        for name, jobs in wl.items():
            result = asyncio.run(Simulation(scen, jobs, make_policy(policy)).run())
            summary = summarize(result)
            bench.runs.setdefault(name, {})[row] = summary
            bench.wall_s += result.wall_s
            results.append(result)
            summaries.append(summary)
            if on_run is not None:
                on_run(name, row, summary)
        bench.policies[row] = _pooled(results, summaries)
    return bench


def render_markdown(bench: ProvisioningBench, command: str, machine: str, date: str, plot: str) -> str:
    """The provisioning section of docs/benchmarks.md."""
    lines = [
        MARK_START,
        "## Provisioning",
        "",
        f"`{command}` — the simulated demo campus (two clusters and one cloud, "
        "`campus_factory.sim.scenario.DEMO_CAMPUS_TOML`) under three policies, on the same workloads "
        "and seed: " + ", ".join(f"**{n}** ({j} jobs)" for n, j in bench.workloads.items()) + ". "
        "`original`: the original Campus Factory rule (one glidein per idle job, no matching, anywhere "
        "within limits); `cobald`: a COBalD-style utilisation-feedback controller per site (demand up "
        "above 0.9 utilisation, down below 0.5); `ours`: the real planner through the real loop and ledger"
        + " with its default settings (pilots sized to the jobs they are for at every demo site)"
        + (
            '; `ours-whole`: ours with whole-slot pilots (`slot.sizing = "fixed"` at every site, the default '
            "before: `campus_factory.sim.scenario.whole_slot_variant`, `examples/demo/whatif-whole-slot.toml`)."
            if "ours-whole" in bench.policies
            else "."
        ),
        "",
        "| policy | wasted (% of delivered core-h) | job wait p50 | job wait p95 | spend | delivered core-h "
        "| wasted: booting / empty pilots / free cores of partly used pilots | pilot start latency p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in bench.policies.items():
        lines.append(
            f"| {name} | {p['waste_pct']:.1f} % | {p['wait_p50_s']:.0f} s | {p['wait_p95_s']:.0f} s | "
            f"${p['cost']:.2f} | {p['delivered_core_h']:.0f} | {p['booting_core_h']:.0f} / "
            f"{p['empty_pilot_core_h']:.0f} / {p['partly_used_core_h']:.0f} | {p['start_latency_p50_s']:.0f} s |"
        )
    lines += [
        "",
        "Per workload:",
        "",
        "| workload | policy | waste | wait p50 | wait p95 | spend |",
        "|---|---|---|---|---|---|",
    ]
    for wl, per in bench.runs.items():
        for name, s in per.items():
            lines.append(
                f"| {wl} | {name} | {s['waste_pct']:.1f} % | {s['wait_p50_s']:.0f} s | {s['wait_p95_s']:.0f} s "
                f"| ${s['cost']:.2f} |"
            )
    lines += ["", *target_lines(bench.policies)]
    lines += [
        "",
        f"![provisioning policies compared]({plot})",
        "",
        f"Measured {date} on: {machine}; {bench.wall_s:.0f} s of simulation in all.",
        MARK_END,
    ]
    return "\n".join(lines)


def target_lines(policies: Mapping[str, Mapping[str, float]], row: str = "ours") -> list[str]:
    """The issue's targets for ``row``, one line each, met or not (Markdown)."""
    ours = policies.get(row)
    if not ours:
        return []
    limit = WAIT_TARGET_FACTOR * ours["start_latency_p50_s"]
    checks = [
        (
            f"waste at most {WASTE_TARGET_PCT:g} % of delivered core-hours",
            ours["waste_pct"] <= WASTE_TARGET_PCT,
            f"{ours['waste_pct']:.1f} %",
        ),
        (
            f"job wait p50 at most {WAIT_TARGET_FACTOR:g} x the pilot start latency p50 ({limit:.0f} s)",
            ours["wait_p50_s"] <= limit,
            f"{ours['wait_p50_s']:.0f} s",
        ),
    ]
    if "cobald" in policies:
        p95 = policies["cobald"]["wait_p95_s"]
        checks.append(
            (
                f"job wait p95 no worse than cobald's ({p95:.0f} s)",
                ours["wait_p95_s"] <= p95,
                f"{ours['wait_p95_s']:.0f} s",
            )
        )
    if "ours-whole" in policies:
        cost = policies["ours-whole"]["cost"]
        checks.append((f"spend no higher than ours-whole (${cost:.2f})", ours["cost"] <= cost, f"${ours['cost']:.2f}"))
    return [f"Targets for {row}:", ""] + [
        f"- {what}: **{'met' if ok else 'not met'}** ({got})" for what, ok, got in checks
    ]


def replace_section(doc: str, section: str) -> str:
    """``doc`` with its provisioning section replaced (or appended when it has none)."""
    if MARK_START in doc and MARK_END in doc:
        head, rest = doc.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        return head + section + tail
    return doc.rstrip("\n") + "\n\n" + section + "\n"
