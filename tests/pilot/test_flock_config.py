"""The flocking knobs `condor-config --flock-to/--flock-from` write: identities, never hosts.

The two-pool test (tests/loop/test_flocking.py) runs real daemons with exactly these files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from campus_factory.cli.main import cli
from campus_factory.config import parse_config
from campus_factory.pilot.poolconfig import central_manager_config, schedd_config


def knobs(text: str) -> dict[str, str]:
    """The knob = value lines of a config file (comments and blank lines left out)."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)", line.strip())
        if m and not line.startswith((" ", "#")):
            out[m.group(1)] = m.group(2)
    return out


def config(*names: str):
    sources = [
        {"name": n, "collector": f"cm.{n}.example.edu:9618", "schedds": [f"submit.{n}.example.edu"]} for n in names
    ]
    return parse_config({"pool": {"collector": "factory-cm.example.edu:9618", "flock_from": sources}})


def test_the_factory_pool_allows_each_campus_schedd_by_its_token_identity_only() -> None:
    text = central_manager_config(config("campus", "medical"), strict=True, flock_from=["submit.campus.example.edu"])
    k = knobs(text)
    assert k["FLOCK_FROM"] == "$(FLOCK_FROM) submit.campus.example.edu"
    assert k["SEC_ADVERTISE_SCHEDD_AUTHENTICATION"] == "REQUIRED"
    assert k["SEC_ADVERTISE_SCHEDD_AUTHENTICATION_METHODS"] == "IDTOKENS"
    assert k["ALLOW_ADVERTISE_SCHEDD"] == "$(ALLOW_DAEMON), flock-campus@campus-factory, flock-medical@campus-factory"
    # no host is authorized for anything, and nothing wider than the identities
    assert not any("example.edu" in v for n, v in k.items() if n.startswith("ALLOW_"))
    assert "*" not in k["ALLOW_ADVERTISE_SCHEDD"]
    assert "CLAIMTOBE" not in text
    # the tokens each side needs are spelled out
    assert "condor_token_create -identity flock-campus@campus-factory -authz ADVERTISE_SCHEDD -authz READ" in text
    assert "condor_token_create -identity negotiator@medical -authz NEGOTIATOR -authz READ" in text


def test_a_non_strict_factory_pool_still_asks_for_the_token_first() -> None:
    k = knobs(central_manager_config(config("campus"), flock_from=["h"]))
    assert k["SEC_ADVERTISE_SCHEDD_AUTHENTICATION_METHODS"].startswith("IDTOKENS,")


def test_the_campus_schedd_flocks_to_the_factory_and_allows_its_negotiator_identity() -> None:
    k = knobs(schedd_config(config("campus"), flock_to=True))
    assert k["FLOCK_TO"] == "$(FLOCK_TO) factory-cm.example.edu:9618"
    assert k["ALLOW_NEGOTIATOR_SCHEDD"] == "$(ALLOW_NEGOTIATOR), negotiator@campus"
    assert k["SEC_NEGOTIATOR_AUTHENTICATION"] == "REQUIRED"
    assert k["SEC_NEGOTIATOR_AUTHENTICATION_METHODS"].startswith("IDTOKENS")
    # without flocking, none of it
    assert not {"FLOCK_TO", "ALLOW_NEGOTIATOR_SCHEDD"} & set(knobs(schedd_config(config("campus"))))


def test_flocking_without_the_campus_in_the_config_is_refused_with_what_to_add() -> None:
    with pytest.raises(ValueError, match=r"\[\[pool.flock_from\]\]"):
        schedd_config(config(), flock_to=True)
    with pytest.raises(ValueError, match=r"\[\[pool.flock_from\]\]"):
        central_manager_config(config(), flock_from=["h"])
    with pytest.raises(ValueError, match="name one"):
        schedd_config(config("a", "b"), flock_to=True)
    assert "negotiator@b" in schedd_config(config("a", "b"), flock_to=True, campus="b")
    with pytest.raises(ValueError, match=r"no \[\[pool.flock_from\]\] entry named 'c'"):
        schedd_config(config("a", "b"), flock_to=True, campus="c")


def test_the_command_writes_both_sides_and_explains_a_missing_campus(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text(
        '[pool]\ncollector = "factory-cm:9618"\n[[pool.flock_from]]\nname = "campus"\n'
        'collector = "cm.campus:9618"\nschedds = ["submit.campus"]\n'
    )
    out = tmp_path / "out"
    args = ["-c", str(path), "condor-config", "--strict", "--flock-from", "submit.campus", "--flock-to"]
    res = CliRunner().invoke(cli, [*args, "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "flock-campus@campus-factory" in (out / "60-campus-factory.conf").read_text()
    assert "negotiator@campus" in (out / "61-campus-factory-routes.conf").read_text()
    bare = tmp_path / "bare.toml"
    bare.write_text('[pool]\ncollector = "factory-cm:9618"\n')
    res = CliRunner().invoke(cli, ["-c", str(bare), "condor-config", "--flock-to"])
    assert res.exit_code == 2 and "pool.flock_from" in res.output
