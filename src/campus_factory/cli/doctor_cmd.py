"""``campus-factory doctor``: check a running setup end to end; exit 1 when a check fails."""

from __future__ import annotations

import asyncio
import textwrap

import click

from ..admin.doctor import Check
from ..admin.doctor_io import Doctor
from ..transport.executor import LocalExecutor
from .context import config_of
from .render import render_json, render_table

__all__ = ["doctor", "render_checks"]

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def render_checks(checks: list[Check]) -> str:
    """A table of the checks, then what to do about each one that is not ok."""
    rows = [{"check": c.name, "status": _MARK[c.status], "message": c.message} for c in checks]
    out = [render_table(rows, ["status", "check", "message"])]
    todo: dict[str, list[str]] = {}
    for c in checks:
        if c.status in ("fail", "warn") and c.hint:
            todo.setdefault(c.hint, []).append(c.name)
    if todo:
        out.append("\nWhat to do:")
        for hint, names in todo.items():
            text = f"{', '.join(names)}: {hint}"
            out.append(textwrap.fill(text, width=110, initial_indent="- ", subsequent_indent="  "))
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    out.append(f"\n{failed} failed, {warned} warning(s), {len(checks)} check(s).")
    return "\n".join(out)


@click.command("doctor")
@click.option("--site", "sites", multiple=True, metavar="NAME", help="Only these sites (repeat); default: all.")
@click.option("--timeout", type=click.FloatRange(0.5), default=15.0, show_default=True, help="Timeout of each probe.")
@click.option("--ledger", "ledger_url", metavar="URL", help="Override factory.ledger_url.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def doctor(ctx: click.Context, sites: tuple[str, ...], timeout: float, ledger_url: str | None, as_json: bool) -> None:
    """Check the setup end to end and say what is wrong, and what to do.

    \b
    collector         reachable from here
    schedds           the ones pool.schedds names exist
    pilot token       minted with pilot.token.command, then tried against the collector with
                      condor_ping (ADVERTISE_STARTD, ADVERTISE_MASTER) holding only that token
    site ... queue    the site's queue command answers (its stderr when not)
    site ... submit   the submit command exists (Slurm: sbatch --test-only accepts a pilot of the slot)
    pilots join       pilots that started but never joined the pool (ledger)
    offline ads       NEGOTIATOR_PRE_JOB_RANK ranks them last; they carry CondorVersion

    Exit status 1 when any check fails.
    """
    cfg = config_of(ctx)
    unknown = sorted(set(sites) - {s.name for s in cfg.sites})
    if unknown:
        raise click.BadParameter(f"no site named {', '.join(unknown)} in the config", param_hint="--site")
    checks = asyncio.run(Doctor(cfg, LocalExecutor(), timeout=timeout, ledger_url=ledger_url).run(sites))
    if as_json:
        click.echo(render_json([c.as_dict() for c in checks]))
    else:
        click.echo(render_checks(checks))
    ctx.exit(1 if any(c.status == "fail" for c in checks) else 0)
