"""``campus-factory bench``: benchmarks, and the figures recorded in docs/benchmarks.md."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import click

from .render import render_json

__all__ = ["bench"]


@click.group("bench")
def bench() -> None:
    """Benchmarks (synthetic inputs; nothing is contacted)."""


def _planner(jobs: int, groups: int, sites: int, runs: int, seed: int, as_json: bool, write: str | None) -> None:
    from ..sim.bench_planner import machine_description, render_markdown, replace_section, run_planner_bench

    r = run_planner_bench(jobs=jobs, groups=groups, sites=sites, runs=runs, seed=seed)
    if as_json:
        click.echo(render_json(asdict(r)))
    else:
        click.echo(
            f"planner: {r.jobs} jobs, {r.groups} groups, {r.sites} sites, {r.pilots} pilots, {r.runs} runs\n"
            f"  cold (new cache) median {r.cold_median_s * 1000:.0f} ms, CPU {r.cold_cpu_median_s * 1000:.0f} ms\n"
            f"  warm (cache kept) median {r.warm_median_s * 1000:.0f} ms, CPU {r.warm_cpu_median_s * 1000:.0f} ms\n"
            f"  peak memory (max RSS)  {r.peak_rss_mb:.0f} MB\n"
            f"  {r.matched_pairs} matched (group, site) pairs, {r.unmatched_groups} unmatched groups, "
            f"{r.submit} pilots to submit"
        )
    if write:
        command = f"campus-factory bench planner --jobs {jobs} --groups {groups} --sites {sites} --runs {runs}"
        section = render_markdown(r, command, machine_description(), time.strftime("%Y-%m-%d"))
        path = Path(write)
        doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
        path.write_text(replace_section(doc, section), encoding="utf-8")
        click.echo(f"wrote the planner section of {path}", err=True)


@bench.command("planner")
@click.option("--jobs", default=100_000, show_default=True, help="Idle jobs in all.")
@click.option("--groups", default=1000, show_default=True, help="Job groups (autoclusters).")
@click.option("--sites", default=50, show_default=True, help="Sites.")
@click.option("--runs", default=5, show_default=True, help="Plans timed (cold and warm each).")
@click.option("--seed", default=1, show_default=True, help="Seed of the synthetic inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--write", type=click.Path(dir_okay=False), help="Record the figures in this Markdown file.")
def bench_planner(jobs: int, groups: int, sites: int, runs: int, seed: int, as_json: bool, write: str | None) -> None:
    """Median time of one plan (cold and warm match cache) and peak memory."""
    _planner(jobs, groups, sites, runs, seed, as_json, write)


@bench.command("loop")
@click.option("--pilots", default=10_000, show_default=True, help="Live pilots held by the factory.")
@click.option("--ledger", "ledger_url", help="Ledger URL (default: a new SQLite file in a temporary directory).")
@click.option("--cycles", default=20, show_default=True, help="Cycles timed (after one warm-up cycle).")
@click.option("--seed", default=1, show_default=True, help="Seed of the churn and the demand's drift.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_loop(pilots: int, ledger_url: str | None, cycles: int, seed: int, as_json: bool) -> None:
    """One factory cycle with N live pilots over 20 fake sites, on a real ledger."""
    from ..sim.bench_loop import run_loop_bench

    r = run_loop_bench(pilots, ledger_url=ledger_url, cycles=cycles, seed=seed)
    if as_json:
        click.echo(render_json(r.summary()))
    else:
        click.echo(
            f"loop: {r.pilots} live pilots ({r.backend}), {r.cycles} cycles: median {r.cycle_s_median * 1000:.0f} ms, "
            f"p95 {r.cycle_s_p95 * 1000:.0f} ms, {r.queries_per_cycle:g} queries per cycle, "
            f"peak RSS {r.rss_mb:.0f} MB ({r.changed_per_cycle:g} pilots changed per cycle)"
        )


@bench.command("loop-table")
@click.option("--postgres-url", help="A PostgreSQL server (its user may create databases): rows for it too.")
@click.option("--cycles", default=10, show_default=True, help="Cycles timed per row.")
@click.option("--sizes", default="1000,10000,50000", show_default=True, help="Live pilots of each row.")
@click.option("--write", type=click.Path(dir_okay=False), help="Record the figures in this Markdown file.")
def bench_loop_table(postgres_url: str | None, cycles: int, sizes: str, write: str | None) -> None:
    """`bench loop` at several sizes, on SQLite (and PostgreSQL), each in its own process."""
    from ..sim.bench_loop_table import render_loop_markdown, replace_loop_section, run_loop_table

    try:
        counts = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {sizes!r}", param_hint="--sizes") from None
    if not counts or min(counts) < 20 or max(counts) > 1_000_000:
        raise click.BadParameter("each size must be from 20 to 1000000", param_hint="--sizes")
    rows = run_loop_table(counts, cycles=cycles, postgres_url=postgres_url)
    for r in rows:
        click.echo(render_json(r))
    if write:
        command = "make bench" if postgres_url else f"campus-factory bench loop-table --sizes {sizes}"
        path = Path(write)
        doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
        path.write_text(replace_loop_section(doc, render_loop_markdown(rows, command, cycles)), encoding="utf-8")
        click.echo(f"wrote the loop section of {path}", err=True)


@bench.command("slurm")
@click.option("--pilots", default=1000, show_default=True, type=click.IntRange(2, 100_000), help="Pilots.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--write", type=click.Path(dir_okay=False), help="Record the figures in this Markdown file.")
def bench_slurm(pilots: int, as_json: bool, write: str | None) -> None:
    """Submit, status and cancel of N pilots at a real Slurm (SLURM_CONF), against Slurm's own floor."""
    from ..sim.bench_planner import machine_description
    from ..sim.bench_slurm import render_slurm_markdown, replace_slurm_section, run_slurm_bench

    r = run_slurm_bench(pilots)
    click.echo(render_json(r.as_dict()) if as_json else f"slurm: {r.as_dict()}")
    if write:
        section = render_slurm_markdown(r, "make bench-slurm", machine_description(), time.strftime("%Y-%m-%d"))
        path = Path(write)
        doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
        path.write_text(replace_slurm_section(doc, section), encoding="utf-8")
        click.echo(f"wrote the Slurm section of {path}", err=True)


@bench.command("all")
@click.option("--write", type=click.Path(dir_okay=False), help="Record the figures in this Markdown file.")
def bench_all(write: str | None) -> None:
    """Every benchmark with its default size (what `make bench` runs)."""
    _planner(100_000, 1000, 50, 5, 1, False, write)
