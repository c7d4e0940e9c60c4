"""`doctor`'s idle-timeout check: a glidein must stay idle longer than a negotiation cycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.admin.test_doctor import invoke

from campus_factory.admin.idle import HTCONDOR_NEGOTIATOR_INTERVAL, idle_timeout_checks, noclaim_shutdown
from campus_factory.config import Config, parse_config


def config(idle: float, update: float, extra: dict[str, str] | None = None, payload: str = "glidein") -> Config:
    return parse_config(
        {
            "pilot": {"payload": payload, "update_interval": update, "extra_config": extra or {}},
            "sites": [{"name": "alpha", "provider": "slurm", "idle_timeout": idle}],
        }
    )


def test_an_idle_timeout_within_a_negotiation_cycle_is_a_warning_that_says_what_to_raise() -> None:
    cfg = config(idle=60, update=30)
    (check,) = idle_timeout_checks(cfg, cfg.sites, 60.0)
    assert (check.name, check.status) == ("idle timeout [alpha]", "warn")
    assert "may leave 30 s after its last claim ended" in check.message
    assert "NEGOTIATOR_INTERVAL = 60 s" in check.message
    assert "above 90 s" in check.hint
    (check,) = idle_timeout_checks(cfg, cfg.sites, 20.0)
    assert check.status == "ok" and "at least 30 s" in check.message


def test_an_unknown_interval_is_judged_by_htcondors_default_and_says_so() -> None:
    cfg = config(idle=15, update=2)
    (check,) = idle_timeout_checks(cfg, cfg.sites, None, "the collector did not answer")
    assert check.status == "warn"
    assert f"assumed {HTCONDOR_NEGOTIATOR_INTERVAL:g} s, HTCondor's default (the collector did not answer)" in (
        check.message
    )


def test_extra_config_noclaim_shutdown_is_the_timeout_judged() -> None:
    cfg = config(idle=600, update=60, extra={"STARTD_NOCLAIM_SHUTDOWN": "90"})
    assert noclaim_shutdown(cfg, cfg.sites[0]) == 90
    (check,) = idle_timeout_checks(cfg, cfg.sites, 60.0)
    assert check.status == "warn" and "idle_timeout 90 s" in check.message
    cfg = config(idle=600, update=60, extra={"startd_noclaim_shutdown": "0"})
    (check,) = idle_timeout_checks(cfg, cfg.sites, 60.0)
    assert check.status == "ok" and "never leave" in check.message


def test_sites_whose_pilots_do_not_join_get_no_check() -> None:
    cfg = config(idle=1, update=60, payload="command")
    assert idle_timeout_checks(cfg, cfg.sites, 60.0) == []


@given(
    idle=st.integers(min_value=1, max_value=100_000),
    update=st.integers(min_value=1, max_value=10_000),
    interval=st.floats(min_value=0, max_value=10_000, allow_nan=False),
)
def test_warns_exactly_when_the_shortest_idle_stay_is_not_longer_than_the_interval(
    idle: int, update: int, interval: float
) -> None:
    cfg = config(idle=idle, update=update)
    (check,) = idle_timeout_checks(cfg, cfg.sites, interval)
    assert check.status == ("ok" if idle - update > interval else "warn")


@pytest.mark.htcondor
def test_doctor_reads_the_negotiators_interval_from_the_real_pool(
    condor_pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    path = tmp_path / "campus.toml"

    def checks(idle: str) -> dict[str, dict[str, str]]:
        path.write_text(
            f"""
[pool]
collector = "{condor_pool.collector}"
[factory]
ledger_url = "sqlite:///{tmp_path}/ledger.sqlite"
[pilot]
payload = "glidein"
update_interval = "2s"
[pilot.token]
command = ["{condor_pool.prefix}/bin/condor_token_create"]
environment = {{ CONDOR_CONFIG = "{condor_pool.config_file}" }}
[[sites]]
name = "here"
provider = "local"
idle_timeout = "{idle}"
batch = {{ work_dir = "{tmp_path}/pilots" }}
""",
            encoding="utf-8",
        )
        r = invoke("-c", str(path), "doctor", "--json", "--timeout", "30")
        return {c["name"]: c for c in json.loads(r.output)}

    # the test pool negotiates every 2 s (tests/conftest.py): 15 s is plenty, 3 s is not
    ok = checks("15s")["idle timeout [here]"]
    assert ok["status"] == "ok" and "NEGOTIATOR_INTERVAL = 2 s" in ok["message"], ok
    short = checks("3s")["idle timeout [here]"]
    assert short["status"] == "warn" and "may leave 1 s after its last claim ended" in short["message"], short
