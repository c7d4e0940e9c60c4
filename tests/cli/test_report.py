"""`campus-factory report` over a ledger built by hand (tests/ledger/scenario.py): exact totals."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.ledger.scenario import T0, build

from campus_factory.cli.main import cli
from campus_factory.cli.ops_cmd import parse_time
from campus_factory.ledger import Ledger

WINDOW = ["--since", "2026-01-01", "--until", "2026-01-01T06:00Z"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    ledger = Ledger.open(url)
    build(ledger)
    ledger.close()
    path = tmp_path / "campus.toml"
    path.write_text(
        f"""
[factory]
name = "campus"
ledger_url = "{url}"

[[sites]]
name = "alpha"
provider = "fake"
cost_per_core_hour = 0.05

[[sites]]
name = "beta"
provider = "fake"
cost_per_core_hour = 0.10
""",
        encoding="utf-8",
    )
    return path


def report(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(config), "report", *args], catch_exceptions=False)


def test_table_by_site(config: Path) -> None:
    r = report(config, *WINDOW)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "campus: 2026-01-01T00:00:00Z .. 2026-01-01T06:00:00Z, by site (ch = core-hours)",
        "GROUP  DELIVERED_CH  USED_CH  WASTED_CH  WASTE_%  REQUESTED  STARTED  FAILED  RUNS  SPEND",
        "alpha  28.00         20.00    8.00       28.6     3          2        1       3     1.40",
        "beta   5.00          2.00     3.00       60.0     1          1        1       1     0.50",
        "total  33.00         22.00    11.00      33.3     4          3        2       4     1.90",
    ]


def test_csv_by_owner(config: Path) -> None:
    r = report(config, *WINDOW, "--by", "owner", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert [(x["group"], x["delivered_core_hours"], x["used_core_hours"], x["wasted_core_hours"]) for x in rows] == [
        ("(no jobs)", "1.00", "0.00", "1.00"),
        ("alice", "20.00", "12.00", "8.00"),
        ("bob", "12.00", "10.00", "2.00"),
        ("total", "33.00", "22.00", "11.00"),
    ]
    assert [x["spend"] for x in rows] == ["0.10", "1.00", "0.80", "1.90"]
    assert [x["pilots_failed"] for x in rows] == ["2", "0", "0", "2"]


def test_json_by_route(config: Path) -> None:
    r = report(config, "--since", f"@{T0:.0f}", "--until", f"@{T0 + 6 * 3600:.0f}", "--by", "route", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert (data["since"], data["until"], data["by"]) == (T0, T0 + 6 * 3600, "route")
    rows = {x["group"]: x for x in data["rows"]}
    assert rows["transparent"]["used_core_hours"] == pytest.approx(16)
    assert rows["no-cloud"]["wasted_core_hours"] == pytest.approx(10)
    assert data["total"]["delivered_core_hours"] == pytest.approx(33)
    assert data["total"]["spend"] == pytest.approx(1.9)


def test_window_clipping_from_the_command_line(config: Path) -> None:
    r = report(config, "--since", "2026-01-01T02:00Z", "--until", "2026-01-01T04:30:00+00:00", "--format", "csv")
    rows = {x["group"]: x for x in csv.DictReader(io.StringIO(r.output))}
    assert (rows["alpha"]["delivered_core_hours"], rows["alpha"]["used_core_hours"]) == ("16.00", "11.00")
    assert rows["total"]["delivered_core_hours"] == "17.00"


def test_bad_windows_are_usage_errors(config: Path) -> None:
    r = report(config, "--since", "yesterday")
    assert r.exit_code == 2 and "is not a time" in r.output
    r = report(config, "--since", "2026-01-02", "--until", "2026-01-01")
    assert r.exit_code == 2 and "the window is empty" in r.output
    r = report(config, "--by", "planet")
    assert r.exit_code == 2


def test_parse_time() -> None:
    now = 2_000_000_000.0
    assert parse_time("now", now) == now
    assert parse_time("@1767225600", now) == T0
    assert parse_time("2026-01-01", now) == T0
    assert parse_time("2026-01-01T01:00:00+01:00", now) == T0
    assert parse_time("2026-01-01T00:00Z", now) == T0
    assert parse_time("24h", now) == now - 86400
    assert parse_time("1h30m", now) == now - 5400
    with pytest.raises(ValueError):
        parse_time("@soon", now)


def test_by_schedd_counts_runs_per_schedd(config: Path) -> None:
    r = report(config, *WINDOW, "--by", "schedd", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = {x["group"]: x for x in csv.DictReader(io.StringIO(r.output))}
    assert rows["schedd"]["job_runs"] == rows["total"]["job_runs"] == "4"
