"""Config text can never reach the worker's shell (issue 15, items 1, 6 and 7).

Hypothesis feeds arbitrary text (and text built around heredoc delimiters, quotes and ClassAd
separators) to the names and values of ``pilot.extra_config``, ``slot.attributes``,
``slot.expressions``, ``slot.start`` and the allowed owners. Each config is either refused with a
ConfigError, or its glidein script passes ``bash -n`` and, run against a stand-in condor_master
that keeps the configuration it was given, never creates the probe file; the configuration the
master reads holds every configured knob as one ``name = value`` line, and the factory's START
and CampusFactorySite lines are the last word (nothing configured replaces them).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.reliability.fakes import HOSTILE, SENTINEL, RecordingSlurm

from campus_factory.config import parse_config
from campus_factory.errors import ConfigError, UnsafeValueError
from campus_factory.pilot.glidein import GlideinSpec, glidein_payload
from campus_factory.pilot.payload import GlideinBuilder, submission_script

MASTER = '#!/bin/sh\ncp "$CONDOR_CONFIG" "$CF_TEST_OUT/condor_config"\nexit 0\n'
NAMES = st.one_of(
    st.sampled_from(
        ["CF_CONFIG_EOF\n", "CF_CONFIG_EOF", "CF_TOKEN_EOF\n", "START\n", "x = 1; Owner", "MY.Foo", "A\nB"]
    ),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}\n?", fullmatch=True),
    st.from_regex(r"Cf[A-Za-z0-9_]{0,12}", fullmatch=True),
    st.from_regex(r"Cf[A-Za-z0-9_]{0,12}", fullmatch=True),
)
VALUES = st.one_of(HOSTILE, st.just("true"), st.text(st.sampled_from("$`'\"\\;&|<>(){}[]*?!#~ ab1"), max_size=30))
WHERE = st.sampled_from(["extra_config", "attributes", "expressions", "start", "owners"])


def config_with(where: str, name: str, value: str, tmp: Path) -> dict[str, Any]:
    slot: dict[str, Any] = {"cpus": 1, "memory_mb": 100}
    pilot: dict[str, Any] = {"payload": "glidein", "condor_locations": [str(tmp / "condor")]}
    site: dict[str, Any] = {"name": "hpc", "provider": "slurm", "slot": slot}
    if where == "extra_config":
        pilot["extra_config"] = {name: value}
    elif where == "attributes":
        slot["attributes"] = {name: value}
    elif where == "expressions":
        slot["expressions"] = {name: value}
    elif where == "start":
        slot["start"] = value
    else:
        site["allowed_owners"] = [value]
    return {"pilot": pilot, "sites": [site]}


def render(data: dict[str, Any]) -> str:
    cfg = parse_config(data)
    builder = GlideinBuilder(cfg.pool, cfg.pilot, RecordingSlurm(), cfg.factory.name)
    script, _ = asyncio.run(
        submission_script(
            cfg.sites[0], cfg.pilot, builder, "f", "s1", [], ["p1"], index_var="SLURM_ARRAY_TASK_ID", summary_dir=""
        )
    )
    return script


def run(script: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "condor" / "sbin").mkdir(parents=True, exist_ok=True)
    master = tmp / "condor" / "sbin" / "condor_master"
    master.write_text(MASTER)
    master.chmod(0o755)
    path = tmp / "pilot.sh"
    path.write_text(script)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp), "HOME": str(tmp), "CF_TEST_OUT": str(tmp)}
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    return subprocess.run(
        ["bash", str(path)], cwd=tmp, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=WHERE, name=NAMES, value=VALUES)
def test_config_text_never_reaches_the_shell(where: str, name: str, value: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = config_with(where, name, value, tmp)
        try:
            script = render(data)
        except ConfigError:
            event("refused by the config")
            return
        except UnsafeValueError:  # a value the config allows but a glidein config line cannot hold
            event("refused when rendering")
            return
        event("rendered and run")
        proc = run(script, tmp)
        assert not SENTINEL.exists(), f"{where} {name!r} = {value!r} was executed"
        assert proc.returncode == 0, proc.stderr
        seen = (tmp / "condor_config").read_text().splitlines()
        if where == "extra_config":
            assert f"{name} = {value}" in seen
        knobs = [line.split(" = ", 1)[0].lower() for line in seen if " = " in line]
        assert knobs.count("start") == 1 and knobs.count("campusfactorysite") == 1, seen
        start = next(line for line in seen if line.lower().startswith("start = "))
        assert start.startswith("START = $(CF_SITE_START) && (time() < MY.CampusFactoryPilotEnd")


@pytest.mark.parametrize(
    "spec",
    [
        {"extra_config": {"CF_CONFIG_EOF\n": "1"}},
        {"extra_config": {"START": "true"}},
        {"extra_config": {"campusfactorysite": '"elsewhere"'}},
        {"attributes": {"CF_CONFIG_EOF\n": "1"}},
        {"attributes": {"START": "true"}},
        {"attributes": {"requirements": "true"}},
        {"extra_config": {"X": "1\nCF_CONFIG_EOF"}},
        {"token": "abc.def.ghi\n"},
        {"scratch": "/tmp\n"},
        {"collector": "cm:9618\n"},
    ],
    ids=repr,
)
def test_a_glidein_spec_built_in_code_is_checked_too(spec: dict[str, Any]) -> None:
    """The renderer does not trust its caller: the same names are refused there."""
    base: dict[str, Any] = {"collector": "cm:9618", "site": "s", "factory": "f", "token": "abc.def.ghi"}
    base.update({"cpus": 1, "memory_mb": 100})
    with pytest.raises(UnsafeValueError):
        glidein_payload(GlideinSpec(**{**base, **spec}))


def test_every_knob_the_glidein_writes_is_factory_owned() -> None:
    """FACTORY_OWNED_KNOBS covers the glidein's own lines, so extra_config can replace none."""
    from campus_factory.config._grammar import FACTORY_OWNED_KNOBS, GLIDEIN_TUNABLE

    spec = GlideinSpec("cm:9618", "s", "f", "abc.def.ghi", 2, 100, gpus=1, ccb=True, fill_only=True)
    lines = glidein_payload(spec)
    body = lines[lines.index("cat > \"$cf_dir/condor_config\" <<'CF_CONFIG_EOF'") + 1 : lines.index("CF_CONFIG_EOF")]
    runtime = [
        line.strip().removeprefix('echo "') for line in lines if line.strip().startswith('echo "') and " = " in line
    ]
    names = {line.split(" = ", 1)[0].lower() for line in body + runtime if " = " in line and not line.startswith("#")}
    assert names and names <= FACTORY_OWNED_KNOBS | GLIDEIN_TUNABLE, names - FACTORY_OWNED_KNOBS - GLIDEIN_TUNABLE
    assert not FACTORY_OWNED_KNOBS & GLIDEIN_TUNABLE


@pytest.mark.parametrize("value", ["$(touch {s})", "`touch {s}`", '"; touch {s}; echo "', "$[", "${{x:-$(touch {s})}}"])
def test_condor_locations_never_reach_the_shell_when_no_htcondor_is_found(value: str) -> None:
    """Found by the hostile-config property test: the "no HTCondor found" message once put the
    quoted locations inside a double-quoted echo, where `$(...)` ran."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = config_with("start", "", "true", tmp)
        data["pilot"]["condor_locations"] = [value.format(s=SENTINEL)]
        proc = run(render(data), tmp)
        assert proc.returncode == 71 and "no HTCondor found" in proc.stderr, proc.stderr
        assert not SENTINEL.exists()
