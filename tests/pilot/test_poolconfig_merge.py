"""`condor-config` never loosens a pool (issue 15, item 12). The generated central-manager file is
included after a pool's own configuration and read back by HTCondor's own config parser
(``htcondor2.param``, in a subprocess: the library's configuration is process-wide): every
identity the pool then allows to advertise startds or masters was allowed before, or is the
pilots' (or, with offline ads, the factory's) identity; every authentication method was allowed
before, or is IDTOKENS: FS is never added."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.pilot.poolconfig import central_manager_config, factory_identity

KNOBS = [
    "ALLOW_ADVERTISE_STARTD",
    "ALLOW_ADVERTISE_MASTER",
    "SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS",
    "SEC_ADVERTISE_MASTER_AUTHENTICATION_METHODS",
    "SEC_READ_AUTHENTICATION_METHODS",
]
#: what HTCondor uses when a knob is unset (the same fallback order the generated file follows)
FALLBACK = {
    "ALLOW_ADVERTISE_STARTD": ["ALLOW_DAEMON", "ALLOW_WRITE"],
    "ALLOW_ADVERTISE_MASTER": ["ALLOW_DAEMON", "ALLOW_WRITE"],
    "SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS": [
        "SEC_DAEMON_AUTHENTICATION_METHODS",
        "SEC_WRITE_AUTHENTICATION_METHODS",
        "SEC_DEFAULT_AUTHENTICATION_METHODS",
    ],
    "SEC_ADVERTISE_MASTER_AUTHENTICATION_METHODS": [
        "SEC_DAEMON_AUTHENTICATION_METHODS",
        "SEC_WRITE_AUTHENTICATION_METHODS",
        "SEC_DEFAULT_AUTHENTICATION_METHODS",
    ],
    "SEC_READ_AUTHENTICATION_METHODS": ["SEC_DEFAULT_AUTHENTICATION_METHODS"],
}
READ_PARAMS = (
    "import json, sys, htcondor2\nnames = sys.argv[1:]\nprint(json.dumps({n: htcondor2.param.get(n) for n in names}))\n"
)
POOLS = {
    "strict pool": (
        "ALLOW_DAEMON = condor@pool/*.example.edu, root@pool\n"
        "ALLOW_ADVERTISE_STARTD = condor@pool/worker*.example.edu\n"
        "ALLOW_ADVERTISE_MASTER = condor@pool/worker*.example.edu\n"
        "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS, SSL\n"
        "SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS = SSL\n"
        "SEC_ADVERTISE_MASTER_AUTHENTICATION_METHODS = SSL\n"
        "SEC_READ_AUTHENTICATION_METHODS = SSL\n"
    ),
    "daemon only": "ALLOW_DAEMON = condor@pool\nSEC_DAEMON_AUTHENTICATION_METHODS = IDTOKENS, SSL\n",
    "write only": "ALLOW_WRITE = *.example.edu\nSEC_WRITE_AUTHENTICATION_METHODS = KERBEROS\n",
    "nothing set": "",
    "recommended": "use security : recommended_v9_0\n",
}


def effective(files: list[Path], names: list[str]) -> dict[str, str | None]:
    top = files[0].parent / f"top-{len(files)}.conf"
    top.write_text("".join(f"include : {f}\n" for f in files))
    env = {**os.environ, "CONDOR_CONFIG": str(top)}
    proc = subprocess.run(
        [sys.executable, "-c", READ_PARAMS, *names], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, str | None] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def items(value: str | None) -> set[str]:
    return {v.strip().upper() for v in (value or "").replace(" ", ",").split(",") if v.strip()}


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("offline_ads", [False, True])
def test_the_default_output_never_loosens_the_pool(tmp_path: Path, pool: str, offline_ads: bool) -> None:
    cfg = parse_config({"pool": {"offline_ads": offline_ads}})
    own = tmp_path / "pool.conf"
    own.write_text(POOLS[pool])
    ours = tmp_path / "60-campus-factory.conf"
    ours.write_text(central_manager_config(cfg))
    names = sorted({*KNOBS, *(n for chain in FALLBACK.values() for n in chain)})
    before, after = effective([own], names), effective([own, ours], KNOBS)
    added = {"PILOT-*@CAMPUS-FACTORY"} | ({factory_identity(cfg).upper()} if offline_ads else set())
    for knob in KNOBS:
        was = next((before[k] for k in (knob, *FALLBACK[knob]) if before[k] is not None), None)
        new = items(after[knob]) - items(was)
        allowed_new = added if knob.startswith("ALLOW") else {"IDTOKENS"}
        assert new <= allowed_new, (knob, was, after[knob])
        assert items(was) <= items(after[knob]), (knob, "the pool's own entries are kept", was, after[knob])
        if knob.startswith("ALLOW_ADVERTISE_STARTD"):
            assert "PILOT-*@CAMPUS-FACTORY" in items(after[knob])
        if "ADVERTISE" in knob and "METHODS" in knob:
            assert items(after[knob]) and after[knob].split(",")[0].strip() == "IDTOKENS"  # type: ignore[union-attr]
    assert "FS" not in items(after["SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS"]) - items(
        before["SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS"] or before["SEC_DEFAULT_AUTHENTICATION_METHODS"]
    )


def test_strict_output_lists_only_pilots_and_tokens(tmp_path: Path) -> None:
    cfg = parse_config({})
    own = tmp_path / "pool.conf"
    own.write_text(POOLS["daemon only"])
    ours = tmp_path / "60-campus-factory.conf"
    ours.write_text(central_manager_config(cfg, strict=True))
    after = effective([own, ours], KNOBS)
    assert items(after["ALLOW_ADVERTISE_STARTD"]) == {"PILOT-*@CAMPUS-FACTORY"}
    assert items(after["SEC_ADVERTISE_STARTD_AUTHENTICATION_METHODS"]) == {"IDTOKENS"}


def test_the_factory_identity_and_how_to_mint_its_token_are_written() -> None:
    cfg = parse_config({"factory": {"name": "physics"}, "pool": {"offline_ads": True}})
    text = central_manager_config(cfg)
    assert factory_identity(cfg) == "factory-physics@campus-factory"
    assert "condor_token_create -identity factory-physics@campus-factory -authz ADVERTISE_STARTD -authz READ" in text
    assert "ALLOW_ADVERTISE_STARTD = $(ALLOW_ADVERTISE_STARTD), pilot-*@campus-factory, factory-physics@" in text
