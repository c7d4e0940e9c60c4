"""``campus-factory plan``: a dry-run plan and its explanation, without contacting any site.

Inputs: the config; idle job groups from ``--demand-file`` (a JSON snapshot) or the pool's
schedds; live pilots, recent pilot history and the job groups' recorded runs (their learned
runtimes) from the ledger (read only; ``--no-ledger`` plans as if none existed); optionally
learned slot ads from a JSON file (``pool.base.LearnedAds.to_json``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import Config
from ..domain import JobGroup
from ..errors import CampusFactoryError
from ..loop.instance_types import declared_types
from ..planner.core import plan as make_plan
from ..planner.explain import explain_plan, group_explanation, render_group_explanation
from ..planner.inputs import pilot_views, site_health_of, site_specs
from ..planner.match import MatchCache
from ..planner.types import Plan, SiteSpec
from .context import config_of
from .render import render_json

__all__ = ["DryRun", "dry_run", "plan"]


@dataclass
class DryRun:
    groups: list[JobGroup]
    sites: list[SiteSpec]
    plan: Plan
    cache: MatchCache


def _demand(cfg: Config, demand_file: str | None) -> list[JobGroup]:
    if demand_file:
        from ..demand.fake import FileDemand

        return FileDemand(demand_file).idle_groups()
    from ..demand.flocking import pool_demand  # with pool.flock_from: what flocks here too

    return pool_demand(cfg.pool).idle_groups()


def dry_run(
    cfg: Config,
    groups: list[JobGroup],
    *,
    ledger_url: str | None = None,
    use_ledger: bool = True,
    learned_file: str | None = None,
    joins_observed: bool | None = None,
    now: float | None = None,
) -> DryRun:
    """Plan from config, demand, the ledger and learned ads; nothing is contacted or written."""
    now = time.time() if now is None else now
    records: list[Any] = []
    health = {}
    if use_ledger:
        from ..loop.assemble import open_for_reading
        from ..loop.runtimes import RuntimeLearner

        ledger = open_for_reading(ledger_url or cfg.factory.ledger_url)
        try:
            records = ledger.live_pilots(cfg.factory.name)
            for s in cfg.sites:
                history = ledger.pilots(factory=cfg.factory.name, site=s.name, limit=50)
                joins = cfg.joins_pool(s) if joins_observed is None else joins_observed
                health[s.name] = site_health_of(s, history, now, joins_observed=joins)
            learner = RuntimeLearner()  # the job groups' runtimes learned from their recorded runs
            learner.refresh(ledger, cfg.factory.name, now)
            groups = learner.apply(groups)
        finally:
            ledger.close()
    learned: dict[str, dict[str, str]] = {}
    if learned_file:
        from ..pool.base import LearnedAds

        store = LearnedAds.from_json(Path(learned_file).read_text(encoding="utf-8"))
        learned = {s.name: a for s in cfg.sites if (a := store.get(s.name)) is not None}
    specs = site_specs(cfg.sites, learned=learned, health=health, instance_types=declared_types(cfg.sites))
    margins = {s.name: s.batch.term_margin for s in cfg.sites}
    views = [v for r in records for v in pilot_views([r], retire_margin_s=margins.get(r.site, 0.0))]
    cache = MatchCache()
    return DryRun(groups, specs, make_plan(groups, specs, views, now, cache=cache), cache)


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)
    f = click.option(
        "--joins-observed/--joins-not-observed",
        default=None,
        help="Whether pilot joins are recorded (black-hole checks); default: yes for glidein pilots.",
    )(f)
    f = click.option(
        "--learned-ads",
        type=click.Path(exists=True, dir_okay=False),
        help="Learned slot ads (JSON written by the factory) to refine the sites' slot ads.",
    )(f)
    f = click.option("--no-ledger", is_flag=True, help="Plan as if no pilot existed (do not open the ledger).")(f)
    f = click.option("--ledger", "ledger_url", metavar="URL", help="Override factory.ledger_url.")(f)
    f = click.option(
        "--demand-file",
        type=click.Path(exists=True, dir_okay=False),
        help="Idle job groups from this JSON snapshot instead of the pool's schedds.",
    )(f)
    return f


def _run(ctx: click.Context, kw: dict[str, Any]) -> DryRun:
    cfg = config_of(ctx)
    groups = _demand(cfg, kw["demand_file"])
    return dry_run(
        cfg,
        groups,
        ledger_url=kw["ledger_url"],
        use_ledger=not kw["no_ledger"],
        learned_file=kw["learned_ads"],
        joins_observed=kw["joins_observed"],
    )


@click.group("plan")
def plan() -> None:
    """Plans: what the planner would do now, and why (no site is contacted)."""


@plan.command("show")
@_options
@click.pass_context
def plan_show(ctx: click.Context, /, **kw: Any) -> None:
    """The plan for the current demand: pilots to submit and cancel per site, with reasons."""
    run = _run(ctx, kw)
    click.echo(render_json(run.plan.to_dict()) if kw["as_json"] else explain_plan(run.plan))


@plan.command("explain")
@click.option("--group", "group_id", metavar="ID", help="Only this job group.")
@click.option("--job", "job_id", metavar="CLUSTER.PROC", help="Only the job group holding this job.")
@_options
@click.pass_context
def plan_explain(ctx: click.Context, /, group_id: str | None, job_id: str | None, **kw: Any) -> None:
    """Per job group: each site's match (the false clauses), capacity, the limit that bound, pilots planned."""
    if group_id and job_id:
        raise click.UsageError("give --group or --job, not both")
    run = _run(ctx, kw)
    chosen = run.groups
    if group_id:
        chosen = [g for g in run.groups if g.group_id == group_id]
        if not chosen:
            raise CampusFactoryError(f"no idle job group {group_id!r} (known: {_known(run.groups)})")
    elif job_id:
        chosen = [g for g in run.groups if job_id in g.jobs]
        if not chosen:
            flocks = config_of(ctx).pool.flock_from
            left = " (jobs some campus slot could run are left to the campus pool)" if flocks else ""
            raise CampusFactoryError(f"job {job_id} is in no idle job group{left} (or its group lists no job ids)")
    data = [group_explanation(run.plan, g, run.sites, run.cache) for g in sorted(chosen, key=lambda g: g.group_id)]
    if kw["as_json"]:
        click.echo(render_json(data))
        return
    if not data:
        click.echo("(no idle jobs)")
    click.echo("\n\n".join(render_group_explanation(d) for d in data))


def _known(groups: list[JobGroup]) -> str:
    ids = sorted(g.group_id for g in groups)
    return ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "") if ids else "none"
