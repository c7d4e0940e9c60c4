"""``campus-factory site scale NAME --min N --max M``: tell a site how many pilots we want.

The floor and ceiling are stored in the ledger (table ``site_overrides``), so they survive
restarts and every factory process sharing the ledger sees them; they replace the site's
``limits.floor``/``limits.ceiling`` from the config until ``--clear``.
"""

from __future__ import annotations

import time

import click

from ..ledger.overrides import SiteOverride, apply_override, clear_override, get_overrides, set_override
from .context import config_of, ledger_of
from .render import render_json

__all__ = ["site_scale"]


@click.command("scale")
@click.argument("name")
@click.option("--min", "floor", type=click.IntRange(min=0), help="Keep at least this many pilots, even idle.")
@click.option("--max", "ceiling", type=click.IntRange(min=0), help="Keep at most this many pilots.")
@click.option("--clear", is_flag=True, help="Remove the override: the config's limits apply again.")
@click.option("--note", default="", help="Why (shown with the override).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def site_scale(
    ctx: click.Context, name: str, floor: int | None, ceiling: int | None, clear: bool, note: str, as_json: bool
) -> None:
    """Set the least (--min) and most (--max) pilots of site NAME; without options, show them.

    \b
    campus-factory site scale cloud --min 2 --max 10   keep 2..10 pilots at 'cloud'
    campus-factory site scale cloud --max 0            drain it: no new pilots, extra ones leave
    campus-factory site scale cloud --clear            back to the config's limits
    """
    cfg = config_of(ctx)
    site = cfg.site(name)
    ledger = ledger_of(ctx)
    factory = cfg.factory.name
    if clear:
        if floor is not None or ceiling is not None:
            raise click.UsageError("--clear takes no --min/--max")
        clear_override(ledger, factory, site.name)
    elif floor is not None or ceiling is not None:
        current = get_overrides(ledger, factory).get(site.name)
        if current is not None:  # an option not given keeps its current value
            floor = current.floor if floor is None else floor
            ceiling = current.ceiling if ceiling is None else ceiling
        now = time.time()
        apply_override(site.limits, SiteOverride(factory, site.name, floor, ceiling, now))  # refuse what cannot hold
        set_override(ledger, factory, site.name, floor=floor, ceiling=ceiling, now=now, note=note)
    override = get_overrides(ledger, factory).get(site.name)
    limits = apply_override(site.limits, override)
    cap = limits.max_pilots if limits.ceiling is None else min(limits.max_pilots, limits.ceiling)
    note_text = override.note if override else ""
    data = {
        "site": site.name,
        "floor": limits.floor,
        "ceiling": limits.ceiling,
        "effective_max": cap,
        "source": "override" if override else "config",
        "note": note_text,
    }
    if as_json:
        click.echo(render_json(data))
        return
    where = (
        f"override set {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(override.updated_at))}"
        if override
        else "config"
    )
    click.echo(
        f"{site.name}: min {limits.floor}, max {cap} pilot(s) ({where})" + (f": {note_text}" if note_text else "")
    )
    if limits.ceiling is not None and limits.ceiling > limits.max_pilots:
        click.echo(f"note: --max {limits.ceiling} is above limits.max_pilots = {limits.max_pilots}", err=True)
