"""``campus-factory demo``, ``simulate`` and ``bench provisioning``: the simulator's commands.

Nothing is contacted: sites, pool and clock are simulated; the factory loop, the planner and
the ledger (a throwaway SQLite file) are the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import click

from .render import render_json

__all__ = ["bench_provisioning", "comparison_lines", "demo", "simulate"]


def _quiet() -> None:
    """Keep the simulated factory's per-cycle lines out of a run's output (unless -v), for this
    command only: the logger's level is restored when the command ends (an embedding process,
    such as the test suite, keeps its own)."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    logger = logging.getLogger("campus_factory")
    before = logger.level
    logger.setLevel(logging.WARNING)
    click.get_current_context().call_on_close(lambda: logger.setLevel(before))


def _progress(total: int) -> Any:
    from ..sim.engine import Sample

    started = time.perf_counter()

    def show(s: Sample) -> None:
        if s.t % 3600 >= 1e-6 and s.t % 3600 <= 3600 - 1e-6:
            return
        pilots = "  ".join(f"{n} {s.running[n]}+{s.queued[n]}q" for n in s.running)
        click.echo(
            f"[{s.t / 3600:5.1f} h] jobs idle {s.idle_jobs:5d} running {s.running_jobs:5d} "
            f"done {s.completed_jobs:5d}/{total}  pilots {pilots}  ({time.perf_counter() - started:.1f} s)",
            err=True,
        )

    return show


def _run(
    scenario: Any, workload: Any, policy: str, out: Path, as_json: bool, label: str, *, echo: bool = True
) -> dict[str, Any]:
    from ..sim.engine import Simulation
    from ..sim.policies import make_policy
    from ..sim.report import chart_png, render_text, summarize, write_html

    progress = None if as_json else _progress(len(workload))
    result = asyncio.run(Simulation(scenario, workload, make_policy(policy), progress=progress).run())
    summary = summarize(result)
    png = chart_png(result, out / f"{label}-{policy}.png", f"{label}: {len(workload)} jobs, policy {policy}")
    page = write_html(summary, png, out / f"{label}-{policy}.html")
    summary = {**summary, "chart_png": str(png), "report_html": str(page)}
    if not echo:
        return summary
    if as_json:
        click.echo(render_json(summary))
    else:
        click.echo(render_text(summary))
        click.echo(f"\nchart: {png}\nreport: {page}")
    return summary


@click.command("demo")
@click.option("--jobs", default=3000, show_default=True, help="Jobs in the burst.")
@click.option("--seed", default=1, show_default=True, help="Seed of the workload and the sites.")
@click.option(
    "--policy",
    type=click.Choice(["ours", "original", "cobald"]),
    default="ours",
    show_default=True,
    help="Provisioning policy.",
)
@click.option(
    "--out", default=".demo", show_default=True, type=click.Path(file_okay=False), help="Where the chart goes."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (no progress).")
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="Also run the baselines (original rule, COBalD-style controller) on the same burst and show them beside it.",
)
def demo(jobs: int, seed: int, policy: str, out: str, as_json: bool, compare: bool) -> None:
    """A simulated campus (two clusters and one cloud) takes a burst of jobs.

    Shows progress per simulated hour, then job waits, pilot core-hours used and wasted, and
    spend per site, and saves a chart (PNG, and HTML with the tables); then the same burst under
    the baselines, side by side, with the targets each explained in one line.
    """
    from ..sim.scenario import demo_scenario, demo_workload

    _quiet()
    if not as_json:
        click.echo(
            f"demo campus: hpc (Slurm, 16-core pilots), campus (PBS, preemptable), cloud ($0.03/core-h); "
            f"{jobs} jobs in bursts; policy {policy} with its default settings",
            err=True,
        )
    workload = demo_workload(jobs, seed=seed)
    quiet = as_json and compare  # one JSON document, with the baselines in it
    summary = _run(demo_scenario(seed=seed), workload, policy, Path(out), as_json, "demo", echo=not quiet)
    if not compare:
        return
    rows = {policy: summary}
    for other in ("original", "cobald"):
        if other != policy:
            rows[other] = _baseline(demo_scenario(seed=seed), workload, other)
    if as_json:
        click.echo(render_json({**summary, "baselines": {k: v for k, v in rows.items() if k != policy}}))
        return
    click.echo("\n" + "\n".join(comparison_lines(rows, policy)))


def _baseline(scenario: Any, workload: Any, policy: str) -> dict[str, Any]:
    from ..sim.engine import Simulation
    from ..sim.policies import make_policy
    from ..sim.report import summarize

    summary = summarize(asyncio.run(Simulation(scenario, workload, make_policy(policy)).run()))
    return {k: v for k, v in summary.items() if k not in ("sites",)}


def comparison_lines(rows: dict[str, dict[str, Any]], policy: str) -> list[str]:
    """The demo's side-by-side table and its targets, each explained in one line."""
    from ..sim.report import WAIT_TARGET_FACTOR, WASTE_TARGET_PCT

    lines = [
        "the same burst on the same campus, three policies:",
        f"{'policy':10} {'waste':>7} {'wait p50':>9} {'wait p95':>9} {'spend':>9}",
    ]
    for name, r in rows.items():
        spend = "$" + format(r["cost"], ".2f")
        lines.append(f"{name:10} {r['waste_pct']:>6.1f}% {r['wait_p50_s']:>8.0f}s {r['wait_p95_s']:>8.0f}s {spend:>9}")
    ours = rows[policy]
    latency = WAIT_TARGET_FACTOR * ours["start_latency_p50_s"]
    checks = [
        (
            f"waste <= {WASTE_TARGET_PCT:g} %",
            ours["waste_pct"] <= WASTE_TARGET_PCT,
            f"{ours['waste_pct']:.1f} %",
            "pilot core-hours no job used (booting, idle, free cores) as a share of what the sites delivered",
        ),
        (
            f"wait p50 <= {WAIT_TARGET_FACTOR:g} x pilot start latency ({latency:.0f} s)",
            ours["wait_p50_s"] <= latency,
            f"{ours['wait_p50_s']:.0f} s",
            "a typical job waits no longer than one pilot takes from submission to joining the pool",
        ),
    ]
    if "cobald" in rows and policy != "cobald":
        p95 = rows["cobald"]["wait_p95_s"]
        checks.append(
            (
                f"wait p95 <= cobald's ({p95:.0f} s)",
                ours["wait_p95_s"] <= p95,
                f"{ours['wait_p95_s']:.0f} s",
                "the slowest jobs wait no longer than under a utilisation-feedback controller",
            )
        )
    lines.append(f"targets for {policy}:")
    for what, ok, got, why in checks:
        lines.append(f"  {what}: {'met' if ok else 'NOT met'} ({got}) - {why}")
    return lines


@click.command("simulate")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Scenario: a campus-factory config with a [simulation] table (see examples/demo/campus.toml).",
)
@click.option(
    "--workload",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Jobs: an SWF file (.swf) or a CSV (submit, runtime, cpus, memory_mb[, requirements]).",
)
@click.option("--policy", type=click.Choice(["ours", "original", "cobald"]), default="ours", show_default=True)
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
@click.option(
    "--out", default=".demo", show_default=True, type=click.Path(file_okay=False), help="Where the chart goes."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (no progress).")
def simulate(config_path: str, workload: str, policy: str, seed: int | None, out: str, as_json: bool) -> None:
    """What if: run a workload on a simulated campus described by a config."""
    from ..sim.scenario import load_scenario
    from ..sim.workloads import load_workload

    _quiet()
    scenario = load_scenario(config_path, seed=seed)
    jobs = load_workload(workload)
    if not jobs:
        raise click.UsageError(f"{workload}: no jobs")
    _run(scenario, jobs, policy, Path(out), as_json, Path(config_path).stem)


@click.command("provisioning")
@click.option("--day-jobs", default=10_000, show_default=True, help="Jobs of the bursty day workload.")
@click.option("--burst-jobs", default=3000, show_default=True, help="Jobs of the demo burst workload.")
@click.option("--hours", default=24.0, show_default=True, help="Length of the day workload, in hours.")
@click.option("--seed", default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"policies": {NAME: {"waste_pct", ...}}}.')
@click.option("--write", type=click.Path(dir_okay=False), help="Record the figures in this Markdown file.")
@click.option("--plot", default="docs/img/provisioning.png", show_default=True, help="Chart written with --write.")
@click.option(
    "--whole/--no-whole",
    default=True,
    show_default=True,
    help="Also run ours with whole-slot pilots at every site (row ours-whole: sizing = 'fixed').",
)
@click.option(
    "--extra",
    "extra_names",
    multiple=True,
    type=click.Choice(["short-singles", "heavy-tail", "none"]),
    help="Extra workloads of other shapes, reported apart (repeat; default: both; none: neither).",
)
@click.option(
    "--extra-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.001, max=1.0),
    help="Shrink the extra workloads (jobs and hours alike), for a quick look.",
)
def bench_provisioning(
    day_jobs: int,
    burst_jobs: int,
    hours: float,
    seed: int,
    as_json: bool,
    write: str | None,
    plot: str,
    whole: bool,
    extra_names: tuple[str, ...],
    extra_scale: float,
) -> None:
    """The original Campus Factory rule, a COBalD-style controller and ours, on the same workloads.

    The day and the burst are pooled; the extra workloads (``--extra``) are reported apart, each
    with the targets within 1.5 x. Progress goes to stderr, one line per (workload, policy) run;
    the figures to stdout."""
    from ..sim.bench_planner import machine_description
    from ..sim.bench_provisioning import (
        EXTRA_WORKLOADS,
        bench_workloads,
        extra_workloads,
        render_markdown,
        replace_section,
        run_provisioning_bench,
    )
    from ..sim.report import comparison_png
    from ..sim.scenario import demo_scenario, demo_whole_slot_scenario

    _quiet()

    def on_run(workload: str, policy: str, s: dict[str, Any]) -> None:
        click.echo(
            f"{workload:13} {policy:10} waste {s['waste_pct']:5.1f} %  wait p50 {s['wait_p50_s']:6.0f} s  "
            f"p95 {s['wait_p95_s']:6.0f} s  spend ${s['cost']:8.2f}  ({s['wall_s']:.1f} s)",
            err=True,
        )

    names = [n for n in dict.fromkeys(extra_names or EXTRA_WORKLOADS) if n != "none"]
    wl = bench_workloads(day_jobs, burst_jobs, hours, seed)
    variants = {"ours-whole": ("ours", demo_whole_slot_scenario(seed=seed))} if whole else None
    extra = extra_workloads(names, extra_scale)
    bench = run_provisioning_bench(wl, scenario=demo_scenario(seed=seed), variants=variants, on_run=on_run, extra=extra)
    if as_json:
        click.echo(render_json(bench.to_json()))
    else:
        for name, p in bench.policies.items():
            click.echo(
                f"{name:10} waste {p['waste_pct']:5.1f} % of {p['delivered_core_h']:.0f} core-h  "
                f"wait p50 {p['wait_p50_s']:.0f} s p95 {p['wait_p95_s']:.0f} s  spend ${p['cost']:.2f}  "
                f"(pilot start latency p50 {p['start_latency_p50_s']:.0f} s)"
            )
        for workload, per in bench.extra_runs.items():
            for name, x in per.items():
                click.echo(
                    f"{workload}: {name:10} waste {x['waste_pct']:5.1f} %  wait p50 {x['wait_p50_s']:.0f} s "
                    f"p95 {x['wait_p95_s']:.0f} s  spend ${x['cost']:.2f}  "
                    f"(pilot start latency p50 {x['start_latency_p50_s']:.0f} s)"
                )
    if write:
        doc_path = Path(write)
        png = comparison_png(bench.policies, plot)
        rel = Path(os.path.relpath(Path(png).resolve(), doc_path.resolve().parent))
        command = f"campus-factory bench provisioning --day-jobs {day_jobs} --burst-jobs {burst_jobs} --hours {hours:g}"
        if names != list(EXTRA_WORKLOADS) or extra_scale != 1.0:
            command += "".join(f" --extra {n}" for n in names or ["none"])
            command += f" --extra-scale {extra_scale:g}" if extra_scale != 1.0 else ""
        section = render_markdown(bench, command, machine_description(), time.strftime("%Y-%m-%d"), rel.as_posix())
        doc = doc_path.read_text(encoding="utf-8") if doc_path.exists() else "# Benchmarks\n"
        doc_path.write_text(replace_section(doc, section), encoding="utf-8")
        click.echo(f"wrote the provisioning section of {doc_path} and {png}", err=True)
