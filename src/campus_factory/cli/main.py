"""``campus-factory``: noun-verb commands over the factory.

Exit codes: 0 success, 1 a failure the message explains, 2 a usage error. No traceback is
shown unless ``-v`` is given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import traceback
from typing import Any

import click

from .. import __version__
from ..config import load_config
from ..errors import CampusFactoryError, ConfigError
from ..ledger import PilotState
from ..planner.explain import explain_plan
from .context import config_of, reader_of
from .data import factory_status, pilot_rows, report_data, site_rows
from .render import render_json, render_table

__all__ = ["cli", "main"]

DEFAULT_CONFIG = "/etc/campus-factory/campus.toml"
#: after a cycle that could not read the pool's idle jobs
DEMAND_HINT = (
    "no pool to ask (yet)? Plan from a snapshot of idle jobs instead: add "
    "--demand-file examples/demand-snapshot.json (see the README, 'A short config')"
)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CampusFactoryError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            click.echo(f"internal error: {type(exc).__name__}: {exc} (run with -v for details)", err=True)
            ctx.exit(1)


def _emit(data: Any, as_json: bool, columns: list[str] | None = None) -> None:
    if as_json:
        click.echo(render_json(data))
    elif isinstance(data, list):
        click.echo(render_table(data, columns))
    else:
        click.echo(render_json(data))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="CAMPUS_FACTORY_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    metavar="FILE",
    help="The TOML config (also from $CAMPUS_FACTORY_CONFIG). See examples/campus.toml.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and tracebacks on errors.")
@click.version_option(__version__, "-V", "--version", prog_name="campus-factory", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config_path: str, verbose: bool) -> None:
    """Grow an HTCondor pool onto idle clusters and clouds, on demand.

    campus-factory reads the pool's idle jobs, plans pilots (HTCondor startds started as batch
    jobs or VMs) only where those jobs can run, and records every pilot in a ledger.

    \b
    First steps:
      campus-factory -c campus.toml config check       validate a config
      campus-factory -c campus.toml factory run --once --dry-run
                                                       show what one cycle would do
      campus-factory -c campus.toml factory run        run the loop
    """
    ctx.obj = {"config_path": config_path, "verbose": verbose, "config": None}
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


# -- config -------------------------------------------------------------------------------
@cli.group()
def config() -> None:
    """Validate and inspect the configuration."""


@config.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def config_check(ctx: click.Context, file: str | None) -> None:
    """Validate FILE (default: --config). Prints OK, or every problem with its key path."""
    path = file or ctx.find_root().obj["config_path"]
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        ctx.exit(1)
    from ..admin.idle import idle_timeout_checks
    from ..config.host import host_findings

    findings = host_findings(cfg)
    # glideins that may leave before a negotiation cycle (doctor asks the running negotiator)
    idle = idle_timeout_checks(cfg, cfg.sites, None, "config check reads no pool; doctor asks the negotiator")
    findings += [("warning", c.name, f"{c.message}. {c.hint}") for c in idle if c.status == "warn"]
    for severity, key, message in findings:
        click.echo(f"{severity}: {key}: {message}", err=True)
    if any(severity == "error" for severity, _, _ in findings):
        ctx.exit(1)
    click.echo(f"OK: {path}: {len(cfg.sites)} site(s), factory {cfg.factory.name!r}")


@config.command("schema")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
def config_schema(fmt: str) -> None:
    """Print the config reference (Markdown) or its JSON schema, generated from the code."""
    from .schema_doc import config_json_schema, config_markdown

    click.echo(config_markdown() if fmt == "markdown" else config_json_schema(), nl=False)


# -- site ---------------------------------------------------------------------------------
@cli.group()
def site() -> None:
    """Sites: where pilots can be started."""


@site.command("list")
@json_option
@click.pass_context
def site_list(ctx: click.Context, as_json: bool) -> None:
    """Configured sites, their slot and limits, and their live pilots."""
    cfg = config_of(ctx)
    _emit(site_rows(cfg, reader_of(ctx)), as_json)


# -- pilot --------------------------------------------------------------------------------
@cli.group()
def pilot() -> None:
    """Pilots: the workers the factory started."""


@pilot.command("list")
@click.option("--site", "site_name", help="Only pilots of this site.")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.value for s in PilotState]),
    help="Only pilots in this state (repeatable).",
)
@click.option("--all", "show_all", is_flag=True, help="Include ended pilots (default: live only).")
@click.option(
    "--limit", default=200, show_default=True, type=click.IntRange(1, 1_000_000), help="At most this many rows."
)
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0), help="Skip this many first (paging).")
@json_option
@click.pass_context
def pilot_list(
    ctx: click.Context,
    site_name: str | None,
    states: tuple[str, ...],
    show_all: bool,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Pilots recorded in the ledger, newest first, one page of --limit from --offset."""
    from ..ledger import LIVE

    cfg = config_of(ctx)
    wanted = [PilotState(s) for s in states] if states else (None if show_all else list(LIVE))
    pilots = reader_of(ctx).pilots(factory=cfg.factory.name, site=site_name, states=wanted, limit=limit, offset=offset)
    _emit(pilot_rows(pilots), as_json)


# -- factory ------------------------------------------------------------------------------
@cli.group()
def factory() -> None:
    """The loop: observe, plan, act, record."""


@factory.command("status")
@json_option
@click.pass_context
def factory_status_cmd(ctx: click.Context, as_json: bool) -> None:
    """The last cycle and the pilots by state."""
    data = factory_status(config_of(ctx), reader_of(ctx))
    if as_json:
        click.echo(render_json(data))
        return
    for key, value in data.items():
        click.echo(f"{key:16} {value if not isinstance(value, dict) else render_json(value)}")


@factory.command("run")
@click.option("--once", is_flag=True, help="Run one cycle and exit.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan from the demand and the ledger only: no site is contacted, nothing is written.",
)
@click.option(
    "--demand-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Read idle job groups from this JSON snapshot instead of the schedds.",
)
@click.option("--ledger", "ledger_url", metavar="URL", help="Override factory.ledger_url.")
@json_option
@click.pass_context
def factory_run(
    ctx: click.Context,
    once: bool,
    dry_run: bool,
    demand_file: str | None,
    ledger_url: str | None,
    as_json: bool,
) -> None:
    """Run the factory: every cycle_interval, observe sites, plan, submit and cancel pilots."""
    from ..loop.assemble import build_factory

    cfg = config_of(ctx)
    if not ctx.find_root().obj.get("verbose"):
        from ..logs import configure_logging

        configure_logging(cfg.logging.format, level=getattr(logging, cfg.logging.level.upper()))
    fac = build_factory(cfg, ledger_url=ledger_url, demand_file=demand_file, read_only=dry_run)

    def show(report: Any) -> None:
        if as_json:
            click.echo(render_json(report_data(report)))
            return
        head = (
            "dry run: nothing submitted or cancelled"
            if report.dry_run
            else (
                f"submitted {report.submitted}, cancelled {report.cancelled}, "
                f"adopted {report.adopted}, orphans cancelled {report.orphans_cancelled}"
            )
        )
        if report.standby:
            head = "standby: another factory of this name holds the ledger's lease"
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.started_at))
        click.echo(f"cycle at {when} ({report.duration_s:.2f} s): {head}")
        if report.plan is not None:
            click.echo(explain_plan(report.plan))
        for err in report.errors:
            click.echo(f"warning: {err}", err=True)

    if once:
        report = asyncio.run(fac.run_once(dry_run=dry_run))
        show(report)
        if demand_file is None and any(e.startswith("demand:") for e in report.errors):
            click.echo(f"hint: {DEMAND_HINT}", err=True)
        ctx.exit(1 if report.errors and not report.plan else 0)

    log = logging.getLogger("campus_factory.cli")

    def each_cycle(report: Any) -> None:
        """The loop logs one line per cycle itself; the plan table only at debug; --json: one object a cycle."""
        if as_json:
            click.echo(render_json(report_data(report)))
        elif report.plan is not None and log.isEnabledFor(logging.DEBUG):
            log.debug("plan of this cycle:\n%s", explain_plan(report.plan))

    async def forever() -> None:
        stop = asyncio.Event()
        got: list[signal.Signals] = []

        def stop_on(sig: signal.Signals) -> None:
            got.append(sig)
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_on, sig)
        log.info(
            "factory %s started: %d site(s), a cycle every %g s%s",
            cfg.factory.name,
            len(cfg.sites),
            cfg.factory.cycle_interval,
            " (dry run: nothing submitted or cancelled)" if dry_run else "",
        )
        await fac.run_forever(stop, dry_run=dry_run, on_cycle=each_cycle)
        log.info(
            "factory %s stopped cleanly on %s: the cycle in progress was finished; pilots keep running "
            "and leave by themselves (idle_timeout, walltime)",
            cfg.factory.name,
            got[0].name if got else "request",
        )

    asyncio.run(forever())


from .pool_cmd import condor_config  # noqa: E402

cli.add_command(condor_config)

from .cloud_cmd import site_scale  # noqa: E402

site.add_command(site_scale)

from .bench_cmd import bench  # noqa: E402
from .plan_cmd import plan  # noqa: E402

cli.add_command(plan)
cli.add_command(bench)

from .sim_cmd import bench_provisioning, demo, simulate  # noqa: E402

cli.add_command(demo)
cli.add_command(simulate)
bench.add_command(bench_provisioning)

from .ops_cmd import register_ops  # noqa: E402

register_ops(cli)

from .doctor_cmd import doctor  # noqa: E402
from .init_cmd import init  # noqa: E402

cli.add_command(init)
cli.add_command(doctor)


def main() -> None:
    cli(
        prog_name="campus-factory",
        auto_envvar_prefix=None,
        windows_expand_args=False,
        standalone_mode=True,
    )


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
