"""Two real personal pools on this host for the flocking test (the Campus Grid Factory topology).

* the **campus** pool: collector, negotiator, schedd ``campus-schedd`` and one small startd (one
  partitionable slot of 2 cores and 256 MB: jobs asking for more memory cannot run there). Its
  schedd carries what ``campus-factory condor-config --flock-to`` writes.
* the **factory** pool: collector and negotiator only (the pilots are its startds), with what
  ``condor-config --strict --flock-from`` writes.

Each pool has its own TRUST_DOMAIN and signing key. The campus schedd authenticates at the
factory collector with an IDTOKEN the factory pool minted (ADVERTISE_SCHEDD, READ): the factory
collector takes schedd ads by IDTOKENS only, from that identity (and its own daemons). The campus
negotiator is the only NEGOTIATOR the campus pool allows by default (``condor@family``); the
factory negotiator is allowed by the identity of the token the campus minted for it. No
CLAIMTOBE anywhere, no host-based entry.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import CondorPool, condor_prefix, free_port_range, personal_pool

from campus_factory.config import Config, parse_config
from campus_factory.pilot.poolconfig import (
    FLOCK_SCHEDD_AUTHZ,
    NEGOTIATOR_AUTHZ,
    central_manager_config,
    schedd_config,
)

__all__ = ["CAMPUS_MEMORY_MB", "TwoPools", "log_tails", "two_personal_pools"]

CAMPUS_MEMORY_MB = 256

CAMPUS_POOL = f"""
TRUST_DOMAIN = campus.test
SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/tokens.d
SCHEDD_NAME = campus-schedd
UPDATE_INTERVAL = 2
NUM_CPUS = 2
MEMORY = {CAMPUS_MEMORY_MB}
NUM_SLOTS_TYPE_1 = 1
SLOT_TYPE_1 = 100%
SLOT_TYPE_1_PARTITIONABLE = True
START = True
SUSPEND = False
PREEMPT = False
KILL = False
## only the campus pool's own negotiator (same master: the family session) by default
ALLOW_NEGOTIATOR = condor@family
"""

FACTORY_POOL = """
TRUST_DOMAIN = factory.test
SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/tokens.d
CLASSAD_LIFETIME = 60
"""


@dataclass(frozen=True)
class TwoPools:
    campus: CondorPool
    factory: CondorPool
    campus_schedd: str  # its Name in the campus collector
    generating: Config  # the config `condor-config` wrote both sides from


def log_tails(pools: TwoPools, lines: int = 25) -> str:
    """The end of the logs that tell why a job did not flock (for assertion messages)."""
    out = []
    for pool, name in ((pools.campus, "SchedLog"), (pools.factory, "NegotiatorLog"), (pools.factory, "CollectorLog")):
        path = pool.local_dir / "log" / name
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(none)"]
        out.append(f"--- {path}\n" + "\n".join(text))
    return "\n".join(out)


def flock_config(factory_collector: str, campus_collector: str, schedd: str = "campus-schedd") -> Config:
    return parse_config(
        {
            "pool": {
                "collector": factory_collector,
                "flock_from": [{"name": "campus", "collector": campus_collector, "schedds": [schedd]}],
            }
        }
    )


def _run(env: dict[str, str], *argv: str) -> str:
    proc = subprocess.run(list(argv), env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}: {proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _install_token(tokens_d: Path, name: str, token: str) -> None:
    tokens_d.mkdir(mode=0o700, exist_ok=True)
    path = tokens_d / name
    path.write_text(token.strip() + "\n")
    path.chmod(0o600)  # HTCondor skips token files with laxer modes


def _mint(env: dict[str, str], identity: str, authz: tuple[str, ...]) -> str:
    args = ["condor_token_create", "-identity", identity, "-lifetime", "7200"]
    for a in authz:
        args += ["-authz", a]
    return _run(env, *args).strip()


@contextlib.contextmanager
def two_personal_pools() -> Iterator[TwoPools]:
    base_port = free_port_range(2)
    fport, cport = base_port, base_port + 1
    gen = flock_config(f"127.0.0.1:{fport}", f"127.0.0.1:{cport}")
    src = gen.pool.flock_from[0]
    factory_extra = FACTORY_POOL + central_manager_config(gen, strict=True, flock_from=["127.0.0.1"])
    with personal_pool(
        "factory pool", "MASTER COLLECTOR NEGOTIATOR", factory_extra, ("-collector", "-negotiator"), port=fport
    ) as (fbase, _, fenv):
        schedd_token = _mint(fenv, src.schedd_id, FLOCK_SCHEDD_AUTHZ)
        campus_extra = CAMPUS_POOL + schedd_config(gen, flock_to=True)
        with personal_pool(
            "campus pool",
            "MASTER COLLECTOR NEGOTIATOR SCHEDD STARTD",
            campus_extra,
            ("-schedd", "-startd"),
            port=cport,
            before_start=lambda local: _install_token(local / "tokens.d", f"flock-{src.name}", schedd_token),
        ) as (cbase, _, cenv):
            negotiator_token = _mint(cenv, src.negotiator_id, NEGOTIATOR_AUTHZ)
            # read at the next authentication that needs it: no reconfig (the factory negotiator
            # normally reaches the campus schedd through the session the schedd put in its
            # submitter ads; the token is what it falls back on)
            _install_token(fbase / "local" / "tokens.d", f"negotiator-{src.name}", negotiator_token)
            name = _run(cenv, "condor_status", "-schedd", "-af", "Name").split()[0]
            prefix = condor_prefix()
            assert prefix is not None
            pools = []
            for base, env, port in ((cbase, cenv, cport), (fbase, fenv, fport)):
                submit = base / "submit"
                submit.mkdir()
                submit.chmod(0o1777)
                pools.append(
                    CondorPool(prefix, base / "local", Path(env["CONDOR_CONFIG"]), f"127.0.0.1:{port}", submit)
                )
            yield TwoPools(pools[0], pools[1], name, gen)
