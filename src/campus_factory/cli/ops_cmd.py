"""Operations commands: ``campus-factory report`` (accounting) and ``campus-factory api serve``.

Register both with :func:`register_ops` (``cli/main.py`` does). Times for ``--since``/``--until``:
an ISO 8601 date or time (UTC unless it carries an offset: ``2026-03-01``, ``2026-03-01T12:00``,
``2026-03-01T12:00+01:00``), UNIX seconds prefixed with ``@`` (``@1767225600``), ``now``, or a
duration meaning that long ago (``24h``, ``7d``, ``1h30m``).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from datetime import UTC, datetime
from typing import Any

import click

from ..config import parse_duration
from ..ledger import Ledger
from ..ledger.accounting import GROUP_BY, Accounting, AccountingRow, account
from .context import config_of, reader_of
from .render import render_json, render_table

__all__ = ["COLUMNS", "api", "parse_time", "register_ops", "report", "report_rows"]

COLUMNS = [
    "group",
    "delivered_core_hours",
    "used_core_hours",
    "wasted_core_hours",
    "waste_pct",
    "pilots_requested",
    "pilots_started",
    "pilots_failed",
    "job_runs",
    "spend",
]
_HEADERS = {
    "delivered_core_hours": "delivered_ch",
    "used_core_hours": "used_ch",
    "wasted_core_hours": "wasted_ch",
    "waste_pct": "waste_%",
    "pilots_requested": "requested",
    "pilots_started": "started",
    "pilots_failed": "failed",
    "job_runs": "runs",
}


def parse_time(text: str, now: float) -> float:
    """UNIX seconds from an ISO date/time, ``@seconds``, ``now`` or a duration ago."""
    value = text.strip()
    if value.lower() == "now":
        return now
    if value.startswith("@"):
        try:
            return float(value[1:])
        except ValueError:
            raise ValueError(f"{text!r}: expected @ followed by UNIX seconds") from None
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use an ISO date or time (2026-03-01, 2026-03-01T12:00Z), "
            "@UNIX-seconds, 'now', or a duration ago such as 24h or 7d"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _fmt(row: AccountingRow) -> dict[str, Any]:
    return {
        "group": row.group,
        "delivered_core_hours": f"{row.delivered_core_hours:.2f}",
        "used_core_hours": f"{row.used_core_hours:.2f}",
        "wasted_core_hours": f"{row.wasted_core_hours:.2f}",
        "waste_pct": "-" if row.waste_pct is None else f"{row.waste_pct:.1f}",
        "pilots_requested": row.pilots_requested,
        "pilots_started": row.pilots_started,
        "pilots_failed": row.pilots_failed,
        "job_runs": row.job_runs,
        "spend": f"{row.spend:.2f}",
    }


def report_rows(acc: Accounting) -> list[dict[str, Any]]:
    """Rows for a table or CSV: one per group, then the total; numbers as fixed-point text."""
    return [_fmt(r) for r in acc.rows] + [_fmt(acc.total)]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.command("report")
@click.option("--since", default="24h", show_default=True, help="Start of the window (inclusive).")
@click.option("--until", default="now", show_default=True, help="End of the window (exclusive).")
@click.option("--by", type=click.Choice(list(GROUP_BY)), default="site", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--ledger", "ledger_url", metavar="URL", help="Override factory.ledger_url.")
@click.pass_context
def report(ctx: click.Context, since: str, until: str, by: str, fmt: str, ledger_url: str | None) -> None:
    """Accounting over [SINCE, UNTIL): core-hours delivered, used and wasted; pilots requested,
    started and failed; spend (delivered core-hours x the site's cost_per_core_hour).

    \b
    Times: 2026-03-01, 2026-03-01T12:00Z, @1767225600, now, or a duration ago (24h, 7d).
    Pilots running across the window are clipped to it. With --by owner, route or schedd, a
    pilot's core-hours are shared among the groups whose jobs ran on it, in proportion to their
    use; runs counts the jobs run on pilots (--by schedd: jobs flocked in from each campus schedd).
    """
    now = time.time()
    try:
        start, end = parse_time(since, now), parse_time(until, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if end <= start:
        raise click.BadParameter(f"the window is empty: --until ({_iso(end)}) must be after --since ({_iso(start)})")
    cfg = config_of(ctx)
    ledger = reader_of(ctx, ledger_url)
    try:
        acc = account(
            ledger,
            since=start,
            until=end,
            by=by,  # type: ignore[arg-type]  # click.Choice guarantees the literal
            costs={s.name: s.cost_per_core_hour for s in cfg.sites},
            factory=cfg.factory.name,
            now=now,
        )
    finally:
        ledger.close()
    if fmt == "json":
        click.echo(render_json(acc.as_dict()))
        return
    rows = report_rows(acc)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
        return
    click.echo(f"{cfg.factory.name}: {_iso(start)} .. {_iso(end)}, by {by} (ch = core-hours)")
    table = [{_HEADERS.get(k, k): v for k, v in r.items()} for r in rows]
    click.echo(render_table(table))


@click.group("api")
def api() -> None:
    """The REST API, Prometheus /metrics and the dashboard."""


@api.command("serve")
@click.option("--host", default=None, help="Listen address (default: api.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="TCP port (default: api.port, 8080).")
@click.option("--ledger", "ledger_url", metavar="URL", help="Override factory.ledger_url.")
@click.pass_context
def api_serve(ctx: click.Context, host: str | None, port: int | None, ledger_url: str | None) -> None:
    """Serve the API and the dashboard (http://HOST:PORT/) until interrupted.

    Reads everything from the ledger, so it may run beside `factory run`. Mutating actions need
    the bearer token of api.token_file / api.token_env; they take effect at the next cycle.
    """
    from ..api import serve
    from ..api.auth import load_token
    from ..logs import configure_logging

    cfg = config_of(ctx)
    verbose = bool(ctx.find_root().obj.get("verbose"))
    level = logging.DEBUG if verbose else getattr(logging, cfg.logging.level.upper())
    token = load_token(cfg.api)
    configure_logging(cfg.logging.format, level=level, secrets=[token] if token else [])
    ledger = Ledger.open(ledger_url or cfg.factory.ledger_url)
    logging.getLogger(__name__).info(
        "API and dashboard on http://%s:%d/ (mutating actions %s)",
        host or cfg.api.host,
        port or cfg.api.port,
        "need the token" if token else "disabled: no token configured",
    )
    try:
        serve(cfg, ledger, host=host, port=port)
    finally:
        ledger.close()


def register_ops(cli: click.Group) -> None:
    cli.add_command(report)
    cli.add_command(api)
