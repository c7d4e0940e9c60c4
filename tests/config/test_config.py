"""Tests of the configuration tree: loading, validation messages, durations."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from campus_factory.config import (
    BatchOptions,
    Config,
    SiteConfig,
    SiteLimits,
    load_config,
    parse_config,
    parse_duration,
)
from campus_factory.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campus.toml"


def example_data() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return dict(info.value.problems)


# -- the example --------------------------------------------------------------------------------
def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert isinstance(cfg, Config)
    assert [s.name for s in cfg.sites] == ["alpha", "beta-gpu"]
    alpha = cfg.site("alpha")
    assert alpha.provider == "slurm"
    assert alpha.walltime == 4 * 3600
    assert alpha.idle_timeout == 600
    assert alpha.slot.cpus == 8
    assert alpha.limits.max_pilots == 20
    assert alpha.batch.partition == "campus"
    assert alpha.batch.extra_directives == ("--constraint=avx2",)
    assert alpha.batch.environment == {"SLURM_CONF": "/etc/slurm/slurm.conf"}
    assert alpha.batch.term_margin == 300
    assert cfg.site("beta-gpu").slot.gpus == 2
    assert cfg.factory.submission_grace == 300
    assert cfg.pool.query_timeout == 30


def test_site_lookup_of_unknown_name_raises() -> None:
    cfg = load_config(EXAMPLE)
    with pytest.raises(ConfigError, match="gamma"):
        cfg.site("gamma")


def test_config_is_frozen() -> None:
    cfg = load_config(EXAMPLE)
    with pytest.raises(ValueError):
        cfg.factory.name = "other"  # type: ignore[misc]


def test_empty_document_gives_defaults() -> None:
    cfg = parse_config({})
    assert cfg.sites == ()
    assert cfg.factory.name == "campus"
    assert cfg.pilot.payload == "command"


# -- misspelt keys ------------------------------------------------------------------------------
def test_misspelt_keys_in_a_file_are_named_by_path(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("max_pilots = 20", "max_pilot = 20", 1)
    text = "factroy_name = 'x'\n" + text
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    problems = dict(info.value.problems)
    assert "sites[alpha].limits.max_pilot" in problems
    assert "unknown key" in problems["sites[alpha].limits.max_pilot"]
    assert "factroy_name" in problems
    assert "unknown key" in problems["factroy_name"]
    text_of_error = str(info.value)
    assert str(bad) in text_of_error
    assert "sites[alpha].limits.max_pilot: unknown key" in text_of_error


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["pool"].__setitem__("colector", "x"), "pool.colector"),
        (lambda d: d["factory"].__setitem__("cycle", 5), "factory.cycle"),
        (lambda d: d["sites"][1]["slot"].__setitem__("cpu", 2), "sites[beta-gpu].slot.cpu"),
        (lambda d: d["sites"][0]["batch"].__setitem__("partiton", "p"), "sites[alpha].batch.partiton"),
        (lambda d: d["sites"][0].__setitem__("wall_time", "1h"), "sites[alpha].wall_time"),
    ],
)
def test_unknown_keys_anywhere(mutate: Any, path: str) -> None:
    data = example_data()
    mutate(data)
    problems = problems_of(data)
    assert path in problems
    assert problems[path].startswith("unknown key")


def test_site_without_a_name_uses_its_index() -> None:
    data = example_data()
    del data["sites"][1]["name"]
    problems = problems_of(data)
    assert problems == {"sites[1].name": "required key is missing"}


@pytest.mark.parametrize(
    ("site", "path"),
    [
        ({"provider": "slurm"}, "sites[0].name"),
        ({"name": "x"}, "sites[x].provider"),
    ],
)
def test_missing_required_keys(site: dict[str, Any], path: str) -> None:
    problems = problems_of({"sites": [site]})
    assert problems == {path: "required key is missing"}


def test_duplicate_site_names() -> None:
    data = {"sites": [{"name": "a", "provider": "fake"}, {"name": "a", "provider": "slurm"}]}
    problems = problems_of(data)
    assert len(problems) == 1
    ((path, reason),) = problems.items()
    assert path == "(top level)"
    assert "'a'" in reason and "twice" in reason


def test_max_queued_above_max_pilots() -> None:
    data = {"sites": [{"name": "a", "provider": "fake", "limits": {"max_pilots": 2, "max_queued": 3}}]}
    problems = problems_of(data)
    assert problems == {"sites[a].limits": "max_queued cannot exceed max_pilots"}
    SiteLimits(max_pilots=3, max_queued=3)  # equal is fine


@pytest.mark.parametrize("work_dir", ["relative/dir", "./x", "~/x", ""])
def test_relative_work_dir(work_dir: str) -> None:
    data = {"sites": [{"name": "a", "provider": "slurm", "batch": {"work_dir": work_dir}}]}
    problems = problems_of(data)
    assert problems == {"sites[a].batch": "work_dir must be an absolute path"}


def test_absolute_work_dir_accepted() -> None:
    assert BatchOptions(work_dir="/scratch/x").work_dir == "/scratch/x"


@pytest.mark.parametrize(
    ("site", "path"),
    [
        ({"name": "1bad", "provider": "fake"}, "sites[1bad].name"),
        ({"name": "a", "provider": "condor-g"}, "sites[a].provider"),
        ({"name": "a", "provider": "fake", "walltime": 0}, "sites[a].walltime"),
        ({"name": "a", "provider": "fake", "walltime": "soon"}, "sites[a].walltime"),
        ({"name": "a", "provider": "fake", "slot": {"cpus": 0}}, "sites[a].slot.cpus"),
    ],
)
def test_invalid_values_name_their_path(site: dict[str, Any], path: str) -> None:
    problems = problems_of({"sites": [site]})
    assert path in problems


def test_several_problems_are_all_reported() -> None:
    data = example_data()
    data["typo"] = 1
    data["sites"][0]["limits"]["max_pilot"] = 1
    data["sites"][1]["batch"]["work_dir"] = "rel"
    problems = problems_of(data)
    assert set(problems) == {"typo", "sites[alpha].limits.max_pilot", "sites[beta-gpu].batch"}


def test_site_config_can_be_built_directly() -> None:
    site = SiteConfig(name="s1", provider="slurm", walltime="2h")
    assert site.walltime == 7200


# -- durations ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("4h", 14400),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1.5h", 5400),
        ("2H", 7200),
        ("1h 30m", 5400),
        ("  45  ", 45),
        ("0", 0),
        (60, 60),
        (0, 0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    "value",
    ["abc", "", "10x", "h", "1h30", "s10", "-5", "-5m", -1, -0.5, True, False, None, [1], {"s": 1}],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_bad_duration_in_config_names_the_key() -> None:
    problems = problems_of({"factory": {"cycle_interval": "abc"}})
    assert "factory.cycle_interval" in problems
    assert "not a duration" in problems["factory.cycle_interval"]


# -- files --------------------------------------------------------------------------------------
def test_non_toml_file(tmp_path: Path) -> None:
    bad = tmp_path / "campus.toml"
    bad.write_text("[pool\ncollector = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(bad)
    assert str(bad) in str(info.value)


def test_undecodable_file(tmp_path: Path) -> None:
    bad = tmp_path / "campus.toml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)


def test_missing_file_mentions_config_option(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert "--config" in str(info.value)
    assert str(missing) in str(info.value)
    assert info.value.problems == []


# -- payloads per site ----------------------------------------------------------------------------
def test_a_site_payload_overrides_the_pilot_payload() -> None:
    cfg = parse_config(
        {
            "pilot": {"payload": "glidein"},
            "sites": [
                {"name": "hpc", "provider": "slurm"},
                {"name": "smoke", "provider": "slurm", "payload": "command"},
                {"name": "ec2", "provider": "ec2", "cloud": {"image": "ami-1", "instance_type": "t3.micro"}},
            ],
        }
    )
    assert [cfg.payload_of(s) for s in cfg.sites] == ["glidein", "command", "glidein"]
    assert [cfg.joins_pool(s) for s in cfg.sites] == [True, False, True]


def test_a_glidein_in_a_kubernetes_pod_is_refused_with_the_fix() -> None:
    k8s = {"name": "pods", "provider": "kubernetes", "cloud": {"image": "registry/pilot:1"}}
    problems = problems_of({"pilot": {"payload": "glidein"}, "sites": [k8s]})
    (message,) = problems.values()
    assert "pods" in message and 'payload = "command"' in message
    cfg = parse_config({"pilot": {"payload": "glidein"}, "sites": [{**k8s, "payload": "command"}]})
    assert not cfg.joins_pool(cfg.sites[0])
