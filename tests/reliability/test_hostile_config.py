"""Broken and hostile configuration: every file gives a ConfigError with a readable message (and
``campus-factory config check`` exits 1 without a traceback); malformed ClassAd text in START,
slot expressions or attribute names is refused with its key path; hostile values in the fields
that reach a pilot's script are either refused (at load, or as an error of that site only) or
quoted: the script parses and running it never executes them (hypothesis, real LocalExecutor
with fake sbatch/squeue and condor_token_create commands)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.reliability.fakes import HOSTILE, SENTINEL, bash_syntax_ok, run_script

from campus_factory.cli.main import cli
from campus_factory.config import load_config, parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.errors import ConfigError
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import Factory
from campus_factory.pilot.payload import GlideinBuilder
from campus_factory.providers import build_provider
from campus_factory.transport.executor import LocalExecutor

SITE = '[[sites]]\nname = "hpc"\nprovider = "slurm"\n'
FILES: dict[str, bytes] = {
    "binary": bytes(range(256)) * 64,
    "utf16": '[factory]\nname = "x"\n'.encode("utf-16"),
    "nested-arrays": b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "nested-tables": b"x = " + b"{a = " * 3000 + b"1" + b"}" * 3000 + b"\n",
    "deep-dotted-key": b"a" + b".a" * 5000 + b" = 1\n",
    "10mb-garbage": b"x" * (10 << 20),
    "10mb-name": b'[factory]\nname = "' + b"x" * (10 << 20) + b'"\n',
    "wrong-types": (
        b'sites = "all"\n[factory]\ncycle_interval = "soon"\nname = 42\n[pool]\nschedds = "a"\n[api]\nport = 99999\n'
    ),
    "site-wrong-types": (SITE + 'limits = 5\nwalltime = "forever"\nallowed_owners = "alice"\n').encode(),
    "duplicate-table": b'[factory]\nname = "a"\n[factory]\nname = "b"\n',
    "duplicate-site": (SITE + SITE).encode(),
    "injected-table": b'[factory]\nname = "x\\"]\\n[pool]\\ncollector = \\"evil:9618\\""\n',
    "dotted-quoted-key": b'"factory.name" = "x"\n',
    "dunder-keys": b"__class__ = 1\nmodel_config = {}\n[factory]\n__init__ = 2\n",
    "unknown-provider": (SITE.replace("slurm", "$(touch /tmp/x)")).encode(),
    "bad-start": (SITE + '[sites.slot]\nstart = "Owner == \\"a\\" &&& true"\n').encode(),
    "start-with-trailing-attribute": (SITE + '[sites.slot]\nstart = "true; Requirements = true"\n').encode(),
    "start-closing-the-ad": (SITE + '[sites.slot]\nstart = "true ] [ START = true"\n').encode(),
    "bad-expression": (SITE + '[sites.slot.expressions]\nIsGood = "Memory >"\n').encode(),
    "bad-attribute-name": (SITE + '[sites.slot.attributes]\n"a b; c" = 1\n').encode(),
    "env-name": (SITE + '[sites.batch.environment]\n"A=B" = "x"\n').encode(),
    "nul-in-command": b'[pilot]\ncommand = ["echo", "a\\u0000b"]\n',
    "relative-work-dir": (SITE + '[sites.batch]\nwork_dir = "../../etc"\n').encode(),
}
#: the key path each problem must be reported at (when the file parses as TOML)
WHERE = {
    "wrong-types": ["sites", "factory.cycle_interval", "factory.name", "pool.schedds", "api.port"],
    "site-wrong-types": ["sites[hpc].limits", "sites[hpc].walltime", "sites[hpc].allowed_owners"],
    "bad-start": ["sites[hpc].slot"],
    "start-with-trailing-attribute": ["sites[hpc].slot"],
    "start-closing-the-ad": ["sites[hpc].slot"],
    "bad-expression": ["sites[hpc].slot"],
    "bad-attribute-name": ["sites[hpc].slot"],
    "env-name": ["sites[hpc].batch"],
    "nul-in-command": ["pilot.command[1]"],
    "duplicate-site": ["(top level)"],
    "injected-table": ["factory.name"],
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_broken_config_files_give_a_readable_config_error(tmp_path: Path, case: str) -> None:
    path = tmp_path / f"{case}.toml"
    path.write_bytes(FILES[case])
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert time.monotonic() - t0 < 10
    text = str(err.value)
    assert text.startswith(str(path)) and len(text) < 2000, text[:3000]
    for key in WHERE.get(case, []):
        assert f"\n  {key}: " in text, text


def test_config_check_exits_1_without_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    for case, data in FILES.items():
        path = tmp_path / f"{case}.toml"
        path.write_bytes(data)
        result = runner.invoke(cli, ["config", "check", str(path)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (case, result.exception)
        assert "Traceback" not in result.output and "internal error" not in result.output, (case, result.output)
    # and as a real process, for the worst two
    exe = Path(sys.executable).parent / "campus-factory"
    for case in ("nested-arrays", "binary"):
        proc = subprocess.run([str(exe), "config", "check", str(tmp_path / f"{case}.toml")], capture_output=True)
        assert proc.returncode == 1 and b"Traceback" not in proc.stderr and proc.stderr.strip(), proc.stderr[-2000:]


# -- hostile values in the fields that reach a pilot's script -------------------------------------
FAKE_SBATCH = '#!/bin/sh\nn=$(ls "$CF_SCRIPTS" | wc -l)\ncat > "$CF_SCRIPTS/$n.sh"\necho $((n + 7000))\n'
FAKE_TOKEN = "#!/bin/sh\necho eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwaWxvdCJ9.c2lnbmF0dXJl\n"
Field = Callable[[dict[str, Any], dict[str, Any], str], None]


def _batch(key: str) -> Field:
    return lambda pilot, site, v: site["batch"].__setitem__(key, v)


FIELDS: dict[str, Field] = {
    "pilot.command": lambda pilot, site, v: pilot.__setitem__("command", ["echo", v]),
    "batch.partition": _batch("partition"),
    "batch.account": _batch("account"),
    "batch.qos": _batch("qos"),
    "batch.extra_directives": lambda pilot, site, v: site["batch"].__setitem__("extra_directives", [v]),
    "batch.work_dir": lambda pilot, site, v: site["batch"].__setitem__(
        "work_dir", site["batch"]["work_dir"] + "/" + v.replace("/", "_").replace(".", "_")
    ),
    "batch.environment.value": lambda pilot, site, v: site["batch"]["environment"].__setitem__("CF_X", v),
    "batch.environment.name": lambda pilot, site, v: site["batch"]["environment"].__setitem__(v, "1"),
    "slot.attributes": lambda pilot, site, v: site["slot"].__setitem__("attributes", {"CfEvil": v}),
    "slot.expressions": lambda pilot, site, v: site["slot"].__setitem__("expressions", {"CfEvil": v}),
    "slot.start": lambda pilot, site, v: site["slot"].__setitem__("start", v),
    "allowed_owners": lambda pilot, site, v: site.__setitem__("allowed_owners", [v]),
    "allowed_groups": lambda pilot, site, v: site.__setitem__("allowed_groups", [v]),
    "extra_config.value": lambda pilot, site, v: pilot.__setitem__("extra_config", {"CF_EVIL": v}),
    "extra_config.name": lambda pilot, site, v: pilot.__setitem__("extra_config", {v: "1"}),
    "token.identity": lambda pilot, site, v: pilot["token"].__setitem__("identity", v),
    "condor_locations": lambda pilot, site, v: pilot.__setitem__("condor_locations", [v]),
    "tarball": lambda pilot, site, v: pilot.__setitem__("tarball", v),
    "cvmfs_repositories": lambda pilot, site, v: pilot.__setitem__("cvmfs_repositories", [v]),
    "scratch": lambda pilot, site, v: pilot.__setitem__("scratch", v),
}


def hostile_config(tmp: Path, field: str, value: str, payload: str) -> dict[str, Any]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name, text in {"sbatch": FAKE_SBATCH, "squeue": "#!/bin/sh\n", "sacct": "#!/bin/sh\n"}.items():
        (bin_dir / name).write_text(text)
    (bin_dir / "condor_token_create").write_text(FAKE_TOKEN)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    (tmp / "scripts").mkdir()
    slot = {"cpus": 1, "memory_mb": 100, "disk_mb": 0}
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CF_SCRIPTS": str(tmp / "scripts")}
    pilot: dict[str, Any] = {
        "payload": payload,
        "command": ["true"],
        "condor_locations": [str(tmp / "no-condor-here")],
        "token": {"command": [str(bin_dir / "condor_token_create")]},
    }
    site: dict[str, Any] = {
        "name": "hpc",
        "provider": "slurm",
        "slot": dict(slot),
        "batch": {"environment": env, "work_dir": str(tmp / "work"), "command_timeout": 10},
    }
    FIELDS[field](pilot, site, value)
    return {
        "factory": {"name": "hostile", "ledger_url": f"sqlite:///{tmp}/ledger.sqlite"},
        "pilot": pilot,
        # the ok site's own slot: the hostile value changed the hpc site's (e.g. slot.start)
        "sites": [site, {"name": "ok", "provider": "fake", "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0}}],
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(FIELDS)), value=HOSTILE, payload=st.sampled_from(["command", "glidein"]))
def test_hostile_config_values_are_refused_or_quoted(field: str, value: str, payload: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = hostile_config(tmp, field, value, payload)
        try:
            cfg = parse_config(data)
        except ConfigError as exc:
            assert str(exc).startswith("<config>: ") and len(str(exc)) < 5000
            event("refused by the config")
            return
        ex = LocalExecutor()
        glidein = GlideinBuilder(cfg.pool, cfg.pilot, ex, cfg.factory.name)
        providers = {s.name: build_provider(s, cfg.pilot, ex, cfg.factory.name, glidein) for s in cfg.sites}
        groups = [
            JobGroup(f"g-{s}", 2, memory_mb=100, disk_mb=0, requirements=f'CampusFactorySite == "{s}"')
            for s in ("hpc", "ok")
        ]
        f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), StaticDemand(groups), providers)
        try:
            report = asyncio.run(f.run_once())  # never raises: a bad value is that site's error
        finally:
            f.ledger.close()
        assert report.plan is not None and report.plan.site("ok").submit > 0, report.errors
        assert all(e.startswith("hpc: ") for e in report.errors), report.errors
        scripts = sorted((tmp / "scripts").iterdir())
        event("script run" if scripts else "site error" if report.errors else "no pilot needed")
        if report.plan.site("hpc").submit:  # (allowed owners/groups or START may match no job)
            assert scripts or report.errors, "neither a script nor an error"
        for path in scripts:
            script = path.read_text()
            assert bash_syntax_ok(script, tmp) == "", (field, value)
            proc = run_script(script, tmp)
            if payload == "command" and field != "pilot.command":
                assert proc.returncode == 0, proc.stderr
        assert not SENTINEL.exists(), f"{field} = {value!r} was executed"


def test_nul_and_bad_environment_names_never_crash_the_loop() -> None:
    """Found by the property test above: these raised ValueError out of run_once (the executor's
    argv and os.environ checks), killing the loop; now the config refuses them."""
    for field, value in (("batch.environment.name", "A=B"), ("batch.environment.value", "x\x00y")):
        with tempfile.TemporaryDirectory() as d, pytest.raises(ConfigError, match=r"environment|NUL"):
            parse_config(hostile_config(Path(d), field, value, "command"))
    assert os.environ.get("A=B") is None
