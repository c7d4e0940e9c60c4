"""Tests of the command line, through click's CliRunner (and one real process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campus_factory.cli.main import cli
from campus_factory.domain import PilotRequest
from campus_factory.ledger import Ledger, PilotEvent, Update

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "campus.toml"
SNAPSHOT = ROOT / "examples" / "demand-snapshot.json"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def small_config(tmp_path: Path) -> tuple[Path, str]:
    """A config with two fake sites and a ledger inside tmp_path."""
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    path = tmp_path / "campus.toml"
    path.write_text(
        f"""
[factory]
name = "testfac"
ledger_url = "{url}"

[[sites]]
name = "one"
provider = "fake"
slot = {{ cpus = 4, memory_mb = 8000 }}
limits = {{ max_pilots = 3, max_queued = 2 }}

[[sites]]
name = "two"
provider = "fake"
enabled = false
""",
        encoding="utf-8",
    )
    return path, url


def seed_ledger(url: str) -> None:
    ledger = Ledger.open(url)
    try:
        reqs = [PilotRequest(f"one-p{i}", 4, 8000, 1000, 0, 3600.0) for i in range(3)]
        ledger.record_requests(factory="testfac", site="one", submission_id="s1", requests=reqs, now=100.0)
        ledger.apply(
            [
                Update("one-p0", PilotEvent.SUBMITTED, job_id="11"),
                Update("one-p1", PilotEvent.STARTED, job_id="12"),
                Update("one-p2", PilotEvent.SUBMIT_FAILED, "refused"),
            ],
            now=110.0,
        )
    finally:
        ledger.close()


# -- config check -------------------------------------------------------------------------------
def test_config_check_example() -> None:
    result = invoke("config", "check", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK")
    assert "2 site(s)" in result.stdout


def test_config_check_warns_of_glideins_that_may_leave_before_a_negotiation(tmp_path: Path) -> None:
    """idle_timeout 90 s checked every 60 s: a glidein may leave 30 s after its last claim, before
    a negotiator running every 60 s (HTCondor's default, assumed without a pool) matches it."""
    short = tmp_path / "short.toml"
    short.write_text(EXAMPLE.read_text(encoding="utf-8").replace('idle_timeout = "10m"', 'idle_timeout = "90s"', 1))
    result = invoke("config", "check", str(short))
    assert result.exit_code == 0, result.output  # a warning, not an error
    assert "warning: idle timeout [alpha]: a glidein may leave 30 s after its last claim" in result.stderr
    assert "NEGOTIATOR_INTERVAL assumed 60 s" in result.stderr and "above 120 s" in result.stderr
    assert "idle timeout" not in invoke("config", "check", str(EXAMPLE)).stderr  # 10 and 15 minutes: fine
    assert result.stdout.startswith("OK")


def test_config_check_uses_the_config_option() -> None:
    result = invoke("-c", str(EXAMPLE), "config", "check")
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout


def test_config_check_misspelt_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text(encoding="utf-8").replace("max_pilots = 20", "max_pilot = 20"))
    result = invoke("config", "check", str(bad))
    assert result.exit_code == 1
    assert "sites[alpha].limits.max_pilot" in result.stderr
    assert "unknown key" in result.stderr
    assert "OK" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("config", "check", "/nonexistent/campus.toml"),
        ("-c", "/nonexistent/campus.toml", "site", "list"),
        ("-c", "/nonexistent/campus.toml", "pilot", "list", "--json"),
    ],
)
def test_missing_config_file(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 1
    assert "/nonexistent/campus.toml" in result.stderr
    assert "--config" in result.stderr
    assert "Traceback" not in result.output


def test_invalid_toml_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[factory\n")
    result = invoke("-c", str(bad), "site", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "not valid TOML" in result.stderr
    assert "Traceback" not in result.output


# -- factory run --------------------------------------------------------------------------------
def test_factory_run_once_dry_run(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    result = invoke(
        "-c",
        str(EXAMPLE),
        "factory",
        "run",
        "--once",
        "--dry-run",
        "--demand-file",
        str(SNAPSHOT),
        "--ledger",
        f"sqlite:///{ledger}",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "dry run: nothing submitted or cancelled" in out
    assert "Sites:" in out and "Job groups:" in out
    assert "dave-bigmem -> nowhere" in out
    assert "carol-train -> beta-gpu" in out
    check = Ledger.open(f"sqlite:///{ledger}")
    try:
        assert check.pilots() == []
        assert check.last_cycle("campus") is None
    finally:
        check.close()


def test_factory_run_once_dry_run_json(tmp_path: Path) -> None:
    result = invoke(
        "-c",
        str(EXAMPLE),
        "factory",
        "run",
        "--once",
        "--dry-run",
        "--json",
        "--demand-file",
        str(SNAPSHOT),
        "--ledger",
        f"sqlite:///{tmp_path}/l.sqlite",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dry_run"] is True
    assert data["submitted"] == 0
    assert data["plan"] is not None


def test_factory_run_demand_file_must_exist(tmp_path: Path) -> None:
    result = invoke("-c", str(EXAMPLE), "factory", "run", "--once", "--demand-file", str(tmp_path / "no.json"))
    assert result.exit_code == 2


# -- site, pilot, factory status ----------------------------------------------------------------
def test_site_list_json(tmp_path: Path) -> None:
    config, url = small_config(tmp_path)
    seed_ledger(url)
    result = invoke("-c", str(config), "site", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["site"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"one", "two"}
    one = rows["one"]
    assert (one["provider"], one["enabled"], one["max_pilots"], one["max_queued"]) == ("fake", True, 3, 2)
    assert one["slot"] == "4c/8000MB/0g"
    assert (one["alive"], one["queued"], one["running"]) == (2, 1, 1)
    assert rows["two"]["enabled"] is False
    assert rows["two"]["alive"] == 0


def test_site_list_table(tmp_path: Path) -> None:
    config, _url = small_config(tmp_path)
    result = invoke("-c", str(config), "site", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["SITE", "PROVIDER"]
    assert [line.split()[0] for line in lines[1:]] == ["one", "two"]


@pytest.mark.parametrize(
    ("extra", "pilots"),
    [
        ((), {"one-p0", "one-p1"}),
        (("--all",), {"one-p0", "one-p1", "one-p2"}),
        (("--state", "failed"), {"one-p2"}),
        (("--state", "queued", "--state", "running"), {"one-p0", "one-p1"}),
        (("--site", "two"), set()),
    ],
)
def test_pilot_list_json(tmp_path: Path, extra: tuple[str, ...], pilots: set[str]) -> None:
    config, url = small_config(tmp_path)
    seed_ledger(url)
    result = invoke("-c", str(config), "pilot", "list", "--json", *extra)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["pilot"] for r in rows} == pilots
    for r in rows:
        assert r["site"] == "one"


def test_pilot_list_pages(tmp_path: Path) -> None:
    config, url = small_config(tmp_path)
    seed_ledger(url)
    pages = []
    for offset in ("0", "1", "2", "3"):
        result = invoke("-c", str(config), "pilot", "list", "--all", "--json", "--limit", "1", "--offset", offset)
        assert result.exit_code == 0, result.output
        pages.append([r["pilot"] for r in json.loads(result.stdout)])
    assert [len(p) for p in pages] == [1, 1, 1, 0] and {p[0] for p in pages[:3]} == {"one-p0", "one-p1", "one-p2"}
    assert invoke("-c", str(config), "pilot", "list", "--offset", "-1").exit_code == 2


def test_pilot_list_json_on_an_empty_ledger(tmp_path: Path) -> None:
    config, _url = small_config(tmp_path)
    result = invoke("-c", str(config), "pilot", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_factory_status_json(tmp_path: Path) -> None:
    config, url = small_config(tmp_path)
    seed_ledger(url)
    result = invoke("-c", str(config), "factory", "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["factory"] == "testfac"
    assert data["sites"] == 2
    assert data["pilots_by_state"] == {"failed": 1, "queued": 1, "running": 1}
    assert data["last_cycle"] is None


# -- usage --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [("no-such-command",), ("site", "frobnicate"), ("pilot", "list", "--state", "bogus"), ("--bogus-flag",)],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert "Usage" in result.output or "Error" in result.output


def test_help_of_the_installed_command() -> None:
    exe = Path(sys.executable).parent / "campus-factory"
    if not exe.exists():
        exe = ROOT / ".venv" / "bin" / "campus-factory"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: campus-factory" in proc.stdout
    for noun in ("config", "site", "pilot", "factory"):
        assert noun in proc.stdout


# -- read-only commands write nothing -------------------------------------------------------------
def test_read_only_commands_create_no_ledger(tmp_path: Path) -> None:
    """A newcomer without /var/lib/campus-factory: looking must not create the ledger's
    directory or file (nor migrate an existing one)."""
    config, _url = small_config(tmp_path)
    state = tmp_path / "state"
    url = f"sqlite:///{state}/ledger.sqlite"
    text = config.read_text().replace(_url, url)
    config.write_text(text)
    for args in (
        ("site", "list"),
        ("pilot", "list", "--json"),
        ("factory", "status", "--json"),
        ("report",),
        ("plan", "explain", "--demand-file", str(SNAPSHOT)),
    ):
        result = invoke("-c", str(config), *args)
        assert result.exit_code == 0, (args, result.output)
        assert not state.exists(), args
    dry = invoke(
        "-c", str(EXAMPLE), "factory", "run", "--once", "--dry-run", "--demand-file", str(SNAPSHOT), "--ledger", url
    )
    assert dry.exit_code == 0, dry.output
    assert "carol-train -> beta-gpu" in dry.stdout  # a real plan, from an empty ledger
    assert not state.exists()


def test_an_unreachable_collector_hints_at_the_demand_snapshot(tmp_path: Path) -> None:
    config, _url = small_config(tmp_path)
    config.write_text('[pool]\ncollector = "127.0.0.1:9"\n' + config.read_text())
    result = CliRunner().invoke(cli, ["-c", str(config), "factory", "run", "--once", "--dry-run"])
    assert "warning: demand: cannot list schedds at 127.0.0.1:9" in result.stderr
    assert "hint: " in result.stderr and "--demand-file examples/demand-snapshot.json" in result.stderr
    assert SNAPSHOT.exists()  # the file the hint names
    ok = invoke("-c", str(config), "factory", "run", "--once", "--dry-run", "--demand-file", str(SNAPSHOT))
    assert "hint:" not in ok.stderr


def test_the_readme_shows_a_plan_without_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's command (section "A short config") runs as written, from the source tree."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## A short config") :]
    line = next(ln for ln in section.splitlines() if "--demand-file" in ln and ln.startswith("campus-factory"))
    args = line.split()[1:]
    monkeypatch.chdir(ROOT)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "dry run: nothing submitted or cancelled" in result.stdout
    assert "dave-bigmem -> nowhere" in result.stdout and "carol-train -> beta-gpu" in result.stdout


def test_version_and_the_init_payload_help() -> None:
    from importlib.metadata import version

    for flag in ("--version", "-V"):
        result = invoke(flag)
        assert result.exit_code == 0 and result.stdout.strip() == f"campus-factory {version('campus-factory')}"
    text = " ".join(invoke("init", "--help").stdout.split())
    payload = text[text.index("--payload") :]
    assert "glidein, an HTCondor startd that joins the pool" in payload.split("--token-command")[0]
