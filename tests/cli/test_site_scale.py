"""`campus-factory site scale`: a manual floor and ceiling per site, stored in the ledger."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from campus_factory.cli.main import cli
from campus_factory.config import load_config
from campus_factory.ledger import Ledger
from campus_factory.ledger.overrides import apply_override, get_overrides


def config(tmp_path: Path) -> Path:
    path = tmp_path / "campus.toml"
    path.write_text(
        f"""
[factory]
name = "scalefac"
ledger_url = "sqlite:///{tmp_path}/ledger.sqlite"

[[sites]]
name = "cloud"
provider = "ec2"
limits = {{ max_pilots = 8, max_queued = 4, floor = 1 }}
cloud = {{ image = "ami-123", instance_type = "t3.micro" }}
"""
    )
    return path


def run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-c", str(path), "site", "scale", *args])


def test_scale_sets_shows_and_clears(tmp_path: Path) -> None:
    path = config(tmp_path)
    r = run(path, "cloud")
    assert r.exit_code == 0 and "cloud: min 1, max 8 pilot(s) (config)" in r.output
    r = run(path, "cloud", "--min", "2", "--max", "5", "--note", "conference deadline")
    assert r.exit_code == 0, r.output
    assert "min 2, max 5" in r.output and "conference deadline" in r.output
    r = run(path, "cloud", "--max", "6", "--json")  # --min keeps its value
    assert json.loads(r.output) == {
        "site": "cloud",
        "floor": 2,
        "ceiling": 6,
        "effective_max": 6,
        "source": "override",
        "note": "",
    }
    cfg = load_config(path)
    ledger = Ledger.open(cfg.factory.ledger_url)
    override = get_overrides(ledger, "scalefac")["cloud"]
    limits = apply_override(cfg.sites[0].limits, override)
    assert (limits.floor, limits.ceiling, limits.max_pilots) == (2, 6, 8)
    r = run(path, "cloud", "--clear")
    assert r.exit_code == 0 and "(config)" in r.output
    assert get_overrides(ledger, "scalefac") == {}


def test_scale_refuses_what_cannot_hold(tmp_path: Path) -> None:
    path = config(tmp_path)
    r = run(path, "cloud", "--min", "5", "--max", "3")
    assert r.exit_code == 1 and "does not fit" in r.output
    r = run(path, "cloud", "--min", "9")  # above max_pilots
    assert r.exit_code == 1
    r = run(path, "nowhere", "--max", "1")
    assert r.exit_code == 1 and "no site named" in r.output
    r = run(path, "cloud", "--max", "12")
    assert r.exit_code == 0 and "above limits.max_pilots" in r.output
