"""``campus-factory condor-config``: the configuration the pool needs for pilots and routes."""

from __future__ import annotations

from pathlib import Path

import click

from ..pilot.poolconfig import ROUTES, ce_route_config, central_manager_config, schedd_config
from .context import config_of

__all__ = ["condor_config"]

FILES = {
    "central_manager": "60-campus-factory.conf",
    "schedd": "61-campus-factory-routes.conf",
    "ce": "60-campus-factory-ce-routes.conf",
}


@click.command("condor-config")
@click.option("--output-dir", type=click.Path(file_okay=False), help="Write the files here instead of printing them.")
@click.option("--strict", is_flag=True, help="Pilots are the pool's only startds: accept startd ads by IDTOKENS only.")
@click.option("--flock-from", multiple=True, metavar="HOST", help="Schedd host of another pool flocking here (repeat).")
@click.option("--flock-to", is_flag=True, help="Make the schedds flock idle jobs to pool.collector.")
@click.option("--campus", metavar="NAME", help="The pool.flock_from entry the schedd file is for (when several).")
@click.option(
    "--default-route",
    type=click.Choice(list(ROUTES)),
    default="transparent",
    show_default=True,
    help="Route of jobs that do not set +CampusFactoryRoute.",
)
@click.pass_context
def condor_config(
    ctx: click.Context,
    output_dir: str | None,
    strict: bool,
    flock_from: tuple[str, ...],
    flock_to: bool,
    campus: str | None,
    default_route: str,
) -> None:
    """Write the HTCondor configuration the pool needs.

    \b
    60-campus-factory.conf           central manager: pilot security, offline-ad rank, flocking in
    61-campus-factory-routes.conf    schedds: routes (cloud-only / no-cloud) and flocking out
    60-campus-factory-ce-routes.conf HTCondor-CE JobRouter routes doing the same

    Install each where its header says, then run condor_reconfig.
    Flocking (docs/routes.md): --flock-from on the factory pool's central manager, --flock-to on
    the campus schedds; both authorize the IDTOKEN identities of pool.flock_from, never hosts.
    """
    cfg = config_of(ctx)
    try:
        texts = {
            "central_manager": central_manager_config(cfg, strict=strict, flock_from=flock_from),
            "schedd": schedd_config(cfg, flock_to=flock_to, default_route=default_route, campus=campus),
            "ce": ce_route_config(cfg),
        }
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if output_dir is None:
        for key, text in texts.items():
            click.echo(f"### {FILES[key]}")
            click.echo(text)
        return
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key, text in texts.items():
        (out / FILES[key]).write_text(text)
        click.echo(f"wrote {out / FILES[key]}")
    click.echo("Install the files as their headers say, then run condor_reconfig on each host.")
