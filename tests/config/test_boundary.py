"""The config boundary (issue 15, items 1, 4, 6, 9, 10): names match their grammar in full,
factory-owned attributes and knobs are refused, every number is finite and bounded, and
`config check` refuses what would fail later (a collector address, a ledger URL, a FIFO, an empty
file). The property test feeds any number to every numeric key of the schema."""

from __future__ import annotations

import math
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from campus_factory.cli.main import cli
from campus_factory.config import Config, load_config, parse_config
from campus_factory.config._grammar import MAX_NUMBER, MAX_TOKEN_LIFETIME
from campus_factory.errors import ConfigError, ProviderError
from campus_factory.pilot.tokens import token_argv


def site(**kw: Any) -> dict[str, Any]:
    return {"name": "alpha", "provider": "fake", **kw}


def refused(data: dict[str, Any], *needles: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    text = str(err.value)
    for needle in needles:
        assert needle in text, text
    return text


# -- item 1: names matched in full (a $ also matches before a trailing newline) ------------------
@pytest.mark.parametrize(
    "data",
    [
        {"pilot": {"extra_config": {"CF_CONFIG_EOF\n": "1"}}},
        {"pilot": {"extra_config": {"FOO\n": "1"}}},
        {"sites": [site(slot={"attributes": {"CF_CONFIG_EOF\n": 1}})]},
        {"sites": [site(slot={"expressions": {"IsGood\n": "true"}})]},
        {"sites": [site(slot={"learn_attributes": ["Foo\n"]})]},
        {"sites": [site(batch={"environment": {"SLURM_CONF\n": "x"}})]},
        {"pilot": {"token": {"environment": {"CONDOR_CONFIG\n": "x"}}}},
        {"pilot": {"token": {"identity": "pilot-{site}@campus-factory\n"}}},
        {"sites": [site(allowed_owners=["alice\n"])]},
        {"pool": {"schedds": ["schedd@host\n"]}},
        {"sites": [site(batch={"partition": "campus\n#SBATCH --uid=0"})]},
        {"sites": [site(batch={"extra_directives": ["--x\r--y"]})]},
        {"pilot": {"scratch": "/tmp\n"}},
        {"pilot": {"scratch": "/tmp/$(touch x)"}},
    ],
    ids=lambda d: repr(d)[:60],
)
def test_names_with_a_trailing_newline_are_refused(data: dict[str, Any]) -> None:
    refused(data)


# -- item 6: attributes and knobs the factory writes itself ---------------------------------------
@pytest.mark.parametrize("name", ["START", "start", "Requirements", "CampusFactorySite", "campusfactorysite", "Name"])
def test_factory_owned_slot_attributes_are_refused(name: str) -> None:
    for key in ("attributes", "expressions"):
        value: Any = True if key == "attributes" else "true"
        refused({"sites": [site(slot={key: {name: value}})]}, "set by the factory itself", f"slot.{key}")


@pytest.mark.parametrize(
    "name",
    ["START", "Start", "Requirements", "CampusFactorySite", "COLLECTOR_HOST", "SEC_TOKEN_DIRECTORY", "MEMORY"],
)
def test_factory_owned_glidein_knobs_are_refused(name: str) -> None:
    refused({"pilot": {"extra_config": {name: "true"}}}, "written by the glidein itself", "pilot.extra_config")
    # nor through a subsystem prefix, which HTCondor would prefer to the plain knob
    refused({"pilot": {"extra_config": {f"STARTD.{name}": "true"}}}, "not an HTCondor configuration knob name")


def test_other_knobs_and_attributes_are_accepted() -> None:
    cfg = parse_config(
        {
            "pilot": {
                "extra_config": {
                    "STARTD_DEBUG": "D_FULLDEBUG",
                    "SEC_DEFAULT_ENCRYPTION": "REQUIRED",
                    "STARTD_NOCLAIM_SHUTDOWN": "5",  # GLIDEIN_TUNABLE: the startd may leave sooner
                }
            },
            "sites": [site(slot={"attributes": {"HasCVMFS": True}, "expressions": {"IsGood": "Memory > 4000"}})],
        }
    )
    assert cfg.pilot.extra_config["STARTD_DEBUG"] == "D_FULLDEBUG"


# -- item 4 and 9: numbers finite and bounded; walltime and token lifetime capped -------------------
@pytest.mark.parametrize(
    "data",
    [
        {"sites": [site(walltime=math.inf)]},
        {"sites": [site(walltime="9" * 400 + "d")]},
        {"sites": [site(walltime=1e300)]},
        {"sites": [site(walltime=10**400)]},
        {"sites": [site(walltime=1e9)]},
        {"sites": [site(walltime="31d")]},
        {"factory": {"cycle_interval": math.inf}},
        {"factory": {"cycle_interval": math.nan}},
        {"factory": {"cycle_interval": "inf"}},
        {"pilot": {"token": {"queue_allowance": "15d"}}},
        {"sites": [site(slot={"cpus": 10**30})]},
        {"sites": [site(rank=math.inf)]},
        {"sites": [site(cost_per_core_hour=math.nan)]},
        {"sites": [site(slot={"attributes": {"Big": math.inf}})]},
        {"sites": [site(slot={"attributes": {"Big": 10**400}})]},
        {"budget": {"max_per_hour": math.inf}},
    ],
    ids=lambda d: repr(d)[:60],
)
def test_numbers_out_of_bounds_are_refused(data: dict[str, Any]) -> None:
    text = refused(data)
    assert len(text) < 1000 and "Traceback" not in text


def test_the_longest_walltime_is_accepted_and_its_token_is_bounded() -> None:
    cfg = parse_config({"sites": [site(walltime="30d")], "pilot": {"token": {"queue_allowance": "14d"}}})
    lifetime = cfg.sites[0].walltime + cfg.pilot.token.queue_allowance
    assert lifetime == MAX_TOKEN_LIFETIME
    assert token_argv(cfg.pilot.token, "alpha", lifetime)[-1] == str(int(MAX_TOKEN_LIFETIME))
    for bad in (1e9, math.inf, math.nan, 0):
        with pytest.raises(ProviderError, match="lifetime"):
            token_argv(cfg.pilot.token, "alpha", bad)


def _numeric_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths of every number (and duration) key in the schema."""
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        text = str(ann)
        sub = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _numeric_paths(ann, (*prefix, name))
        elif sub is not None and "tuple" not in text:
            out += _numeric_paths(sub, (*prefix, name))
        elif ann in (int, float) or text in ("int | None", "float | None"):
            out.append((*prefix, name))
    return out


SITE_PATHS = [("sites", *p) for p in _numeric_paths(Config.model_fields["sites"].annotation.__args__[0])]
PATHS = [p for p in _numeric_paths(Config) if p[0] != "sites"] + SITE_PATHS
NUMBERS = st.one_of(
    st.floats(),
    st.integers(),
    st.integers(min_value=10**14, max_value=10**400),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e300, 2**63, -(2**63)]),
    st.text("0123456789.smhd e+-inf", max_size=12),
)


def _walk_numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _walk_numbers(v)]
    if isinstance(value, list | tuple):
        return [n for v in value for n in _walk_numbers(v)]
    return []


def test_the_schema_has_numeric_keys_to_try() -> None:
    assert len(PATHS) > 40 and ("sites", "walltime") in PATHS and ("factory", "cycle_interval") in PATHS


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(PATHS), value=NUMBERS)
def test_any_number_anywhere_gives_a_bounded_config_or_a_config_error(path: tuple[str, ...], value: Any) -> None:
    data: dict[str, Any] = {}
    node = data
    if path[0] == "sites":
        node = {"name": "alpha", "provider": "fake"}
        data["sites"] = [node]
        path = path[1:]
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        assert len(str(exc)) < 2000
        event("refused")
        return
    event("accepted, bounded")
    for n in _walk_numbers(cfg.model_dump()):
        assert math.isfinite(n) and abs(n) <= MAX_NUMBER, (path, value, n)


# -- item 10: what `config check` must not call OK ------------------------------------------------
@pytest.mark.parametrize("collector", ["127.0.0.1:99999", "http://x", "", " ", "cm:0", "cm:9618\n", "a b:9618"])
def test_bad_collector_addresses_are_refused(collector: str) -> None:
    refused({"pool": {"collector": collector}}, "pool.collector")


@pytest.mark.parametrize(
    "collector", ["cm.example.edu:9618", "cm", "10.0.0.1:9618", "[::1]:9618", "cm:9618?sock=collector"]
)
def test_good_collector_addresses_are_accepted(collector: str) -> None:
    assert parse_config({"pool": {"collector": collector}}).pool.collector == collector


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite://x.db", "sqlite:relative.db", "oracle://x", "ledger.sqlite"]
)
def test_unsupported_ledger_urls_are_refused(url: str) -> None:
    refused({"factory": {"ledger_url": url}}, "factory.ledger_url")


def test_sites_differing_only_in_case_are_refused() -> None:
    refused({"sites": [site(), site(name="ALPHA")]}, "only in case")


def test_a_scoped_slot_attribute_is_refused() -> None:
    refused({"sites": [site(slot={"attributes": {"MY.Foo": 1}})]}, "MY.Foo", "no scope prefix")


def test_an_empty_config_file_is_refused(tmp_path: Path) -> None:
    for text in ("", "\n\n", "# only a comment\n"):
        (tmp_path / "empty.toml").write_text(text)
        with pytest.raises(ConfigError, match="empty"):
            load_config(tmp_path / "empty.toml")


def test_a_fifo_as_config_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "campus.toml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_config(fifo)
            outcome.append(None)
        except ConfigError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # unblock the reader so the thread ends, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("load_config blocked on a FIFO")
    assert isinstance(outcome[0], ConfigError) and "not a regular file" in str(outcome[0])
    with pytest.raises(ConfigError, match="not a regular file"):
        load_config(tmp_path)  # a directory


def _check(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "campus.toml"
    path.write_text(text)
    return CliRunner().invoke(cli, ["config", "check", str(path)])


def test_config_check_refuses_an_unwritable_ledger(tmp_path: Path) -> None:
    """A directory this user may not write (as root: an immutable one, chattr +i)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(locked)], check=True, capture_output=True, timeout=30)
    else:
        locked.chmod(0o555)
    try:
        result = _check(tmp_path, f'[factory]\nledger_url = "sqlite:///{locked}/sub/ledger.sqlite"\n')
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], check=True, capture_output=True, timeout=30)
        locked.chmod(0o755)
    assert result.exit_code == 1 and "not writable" in result.stderr, result.output


def test_config_check_refuses_a_ledger_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = _check(tmp_path, f'[factory]\nledger_url = "sqlite:///{tmp_path}/afile/ledger.sqlite"\n')
    assert result.exit_code == 1 and "not a directory" in result.stderr, result.output


def test_config_check_refuses_mysql_with_a_clear_message(tmp_path: Path) -> None:
    result = _check(tmp_path, '[factory]\nledger_url = "mysql://u@h/db"\n')
    assert result.exit_code == 1 and "not a supported ledger URL scheme" in result.stderr
    assert "internal error" not in result.output


def test_config_check_warns_of_a_world_readable_token_file(tmp_path: Path) -> None:
    token = tmp_path / "api-token"
    token.write_text("s3cr3t-token-value\n")
    token.chmod(0o644)
    ledger = f'[factory]\nledger_url = "sqlite:///{tmp_path}/l.sqlite"\n'
    result = _check(tmp_path, ledger + f'[api]\ntoken_file = "{token}"\n')
    assert result.exit_code == 0 and "warning: api.token_file" in result.stderr and "chmod 600" in result.stderr
    token.chmod(0o600)
    result = _check(tmp_path, ledger + f'[api]\ntoken_file = "{token}"\n')
    assert result.exit_code == 0 and "warning" not in result.stderr
