"""Pilot tokens are least-privilege and expire (marker `htcondor`, the real pool and the real
condor_token_create through pilot/tokens.py).

* the JWT carries the pilot identity, exactly the scopes ADVERTISE_STARTD, ADVERTISE_MASTER and
  READ, and an expiry of walltime + queue allowance;
* the collector takes a startd ad advertised with a fresh token, and refuses one advertised with
  an expired token;
* even for an identity the pool lets administer it, the token's scopes stop an ADMINISTRATOR
  command (a token without scopes, for the same identity, is obeyed: the test can fail).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from campus_factory.config import TokenOptions, parse_config
from campus_factory.pilot.payload import GlideinBuilder
from campus_factory.pilot.tokens import PILOT_AUTHZ, mint_pilot_token
from campus_factory.transport.executor import LocalExecutor

pytestmark = pytest.mark.htcondor


def options(pool: Any, identity: str = "pilot-{site}@campus-factory") -> TokenOptions:
    return TokenOptions(
        identity=identity,
        command=(f"{pool.prefix}/bin/condor_token_create",),
        environment={"CONDOR_CONFIG": str(pool.config_file)},
    )


def mint(pool: Any, lifetime: float, identity: str = "pilot-{site}@campus-factory") -> str:
    return asyncio.run(mint_pilot_token(LocalExecutor(), options(pool, identity), "siteA", lifetime))


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def as_token(pool: Any, token: str, tmp: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run an HTCondor client command authenticating with ``token`` only."""
    tokens = tmp / f"tokens-{uuid.uuid4().hex[:6]}"
    tokens.mkdir(mode=0o700)
    (tokens / "t").write_text(token + "\n")
    (tokens / "t").chmod(0o600)
    env = {
        **os.environ,
        **pool.env,
        "_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "IDTOKENS",
        "_CONDOR_SEC_TOKEN_DIRECTORY": str(tokens),
        "_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY": str(tokens),
        "_CONDOR_SEC_CLIENT_AUTHENTICATION": "REQUIRED",
    }
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=60)


def advertise(pool: Any, token: str, tmp: Path, name: str) -> subprocess.CompletedProcess[str]:
    ad = tmp / f"{name}.ad"
    ad.write_text(
        f'MyType = "Machine"\nName = "{name}"\nMachine = "{name}"\nStartdIpAddr = "<127.0.0.1:9>"\n'
        'MyAddress = "<127.0.0.1:9>"\nState = "Owner"\nActivity = "Idle"\nRequirements = false\nSTART = false\n'
        'CampusFactorySite = "token-test"\n'
    )
    return as_token(pool, token, tmp, "condor_advertise", "UPDATE_STARTD_AD", str(ad))


def in_collector(pool: Any, name: str) -> bool:
    return pool.run("condor_status", "-any", "-const", f'Name == "{name}"', "-af", "Name", check=False).strip() == name


def invalidate(pool: Any, tmp: Path, name: str) -> None:
    ad = tmp / f"{name}.inv"
    ad.write_text(f'MyType = "Query"\nTargetType = "Machine"\nRequirements = Name == "{name}"\n')
    pool.run("condor_advertise", "INVALIDATE_STARTD_ADS", str(ad), check=False)


def test_pilot_tokens_carry_only_what_a_startd_needs_and_expire(condor_pool) -> None:
    cfg = parse_config({"sites": [{"name": "siteA", "provider": "slurm", "walltime": "2h"}]})
    builder = GlideinBuilder(
        cfg.pool, cfg.pilot.model_copy(update={"token": options(condor_pool)}), LocalExecutor(), "f"
    )
    before = time.time()
    spec = asyncio.run(builder.spec(cfg.sites[0]))
    c = claims(spec.token)
    assert c["sub"] == "pilot-siteA@campus-factory"
    assert sorted(c["scope"].split()) == sorted(f"condor:/{a}" for a in PILOT_AUTHZ)
    assert set(PILOT_AUTHZ) == {"ADVERTISE_STARTD", "ADVERTISE_MASTER", "READ"}
    lifetime = cfg.sites[0].walltime + cfg.pilot.token.queue_allowance  # 2 h + 1 day
    assert "exp" in c and abs(c["exp"] - (before + lifetime)) < 60, (c, before + lifetime)
    assert c["exp"] - c["iat"] == int(lifetime)


def test_the_collector_refuses_an_expired_pilot_token(condor_pool, tmp_path: Path) -> None:
    fresh, short = mint(condor_pool, 600), mint(condor_pool, 2)
    names = [f"cf-token-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("fresh", "expired")]
    try:
        ok = advertise(condor_pool, fresh, tmp_path, names[0])
        assert ok.returncode == 0, ok.stderr
        deadline = time.monotonic() + 90
        while not in_collector(condor_pool, names[0]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert in_collector(condor_pool, names[0]), "a fresh pilot token could not advertise a startd"
        time.sleep(max(0.0, claims(short)["exp"] + 2 - time.time()))
        refused = advertise(condor_pool, short, tmp_path, names[1])
        time.sleep(3)
        assert not in_collector(condor_pool, names[1]), (refused.stdout, refused.stderr)
        assert refused.returncode != 0 or "fail" in (refused.stdout + refused.stderr).lower()
    finally:
        for name in names:
            invalidate(condor_pool, tmp_path, name)


def test_token_scopes_stop_administrator_commands(condor_pool, tmp_path: Path) -> None:
    """root@localhost may administer the test pool; a pilot-scoped token for it may not."""
    scoped = mint(condor_pool, 600, identity="root@localhost")
    assert claims(scoped)["sub"] == "root@localhost"
    unscoped = condor_pool.token("root@localhost")
    assert "scope" not in claims(unscoped)
    denied = as_token(condor_pool, scoped, tmp_path, "condor_reconfig", "-collector")
    allowed = as_token(condor_pool, unscoped, tmp_path, "condor_reconfig", "-collector")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert denied.returncode != 0, denied.stdout + denied.stderr
    # READ is in the scope: the pilot may query the collector
    # (the reconfig just made may leave the collector's own ad out for a moment)
    for _ in range(20):
        read = as_token(condor_pool, scoped, tmp_path, "condor_status", "-collector", "-af", "Name")
        if read.returncode != 0 or read.stdout.strip():
            break
        time.sleep(0.5)
    assert read.returncode == 0 and read.stdout.strip(), read.stderr
