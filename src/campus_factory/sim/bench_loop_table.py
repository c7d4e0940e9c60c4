"""``make bench``'s loop figures: ``bench loop`` at several sizes on SQLite and PostgreSQL.

Each run is its own process (``campus-factory bench loop --json``), so its peak RSS is its own;
on PostgreSQL each run gets a new database on the given server, dropped afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ..errors import LedgerError
from .bench_planner import machine_description

__all__ = ["MARK_END", "MARK_START", "render_loop_markdown", "replace_loop_section", "run_loop_table"]

MARK_START = "<!-- bench:loop:start -->"
MARK_END = "<!-- bench:loop:end -->"
SIZES = (1_000, 10_000, 50_000)


def _admin(url: str, sql: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _one(pilots: int, cycles: int, ledger_url: str | None) -> dict[str, Any]:
    argv = [sys.executable, "-m", "campus_factory.cli.main", "bench", "loop", "--pilots", str(pilots)]
    argv += ["--cycles", str(cycles), "--json"]
    if ledger_url:
        argv += ["--ledger", ledger_url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise LedgerError(f"bench loop --pilots {pilots} failed: {proc.stderr.strip()[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def run_loop_table(
    sizes: Sequence[int] = SIZES, *, cycles: int = 10, postgres_url: str | None = None
) -> list[dict[str, Any]]:
    """One row per (ledger, size); ``postgres_url`` names a server whose user may create databases."""
    rows = [_one(n, cycles, None) for n in sizes]
    if postgres_url:
        base = make_url(postgres_url)
        for n in sizes:
            name = f"cf_bench_{uuid.uuid4().hex[:10]}"
            _admin(postgres_url, f'CREATE DATABASE "{name}"')
            try:
                rows.append(_one(n, cycles, base.set(database=name).render_as_string(hide_password=False)))
            finally:
                _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return rows


def render_loop_markdown(rows: Sequence[dict[str, Any]], command: str, cycles: int) -> str:
    def ms(x: float) -> str:
        return f"{x * 1000:.0f} ms"

    lines = [
        MARK_START,
        "## The loop",
        "",
        f"`{command}` — `campus-factory bench loop --pilots N [--ledger URL] --cycles {cycles}` per row, each "
        "in its own process: one factory, N live pilots in a real ledger over 20 fake sites "
        "(`campus_factory.sim.bench_loop`: batch queues in memory, every running pilot's busy slot "
        "in the pool), 0.5 % of the running pilots ending each cycle and the planner replacing them, "
        "200 job groups drifting. Wall time is the machine's (shared, see its load below); CPU time "
        "is the factory process's own.",
        "",
        "| ledger | live pilots | cycle median (wall) | cycle p95 (wall) | cycle CPU (median) "
        "| SQL statements per cycle | pilots changed per cycle | peak RSS | `pilot list` first page / middle page |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['pilots']} | {ms(r['cycle_s_median'])} | {ms(r['cycle_s_p95'])} | "
            f"{ms(r['cycle_cpu_s_median'])} | {r['queries_per_cycle']:g} | {r['changed_per_cycle']:g} | "
            f"{r['rss_mb']:.0f} MB | {ms(r['list_s'])} / {ms(r['list_deep_s'])} |"
        )
    lines += [
        "",
        "Targets at 10,000 live pilots: a cycle ≤ 0.5 s median and ≤ 200 MB, on SQLite and PostgreSQL; "
        "SQL statements per cycle that grow with what changed, not with the pilots held "
        "(`tests/loop/test_incremental.py` counts them).",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on: {machine_description()}.",
        MARK_END,
    ]
    return "\n".join(lines)


def replace_loop_section(doc: str, section: str) -> str:
    """``doc`` with its loop section replaced (or appended when it has none)."""
    if MARK_START in doc and MARK_END in doc:
        head, rest = doc.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        return head + section + tail
    return doc.rstrip("\n") + "\n\n" + section + "\n"
