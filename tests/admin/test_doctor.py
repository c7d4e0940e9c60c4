"""`campus-factory doctor`: each check names the problem in words an admin can act on."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campus_factory.admin.doctor import PingResult, join_checks, parse_ping, rank_check, token_claims, token_verdict
from campus_factory.cli.main import cli
from campus_factory.config import parse_config
from campus_factory.ledger import PilotRecord, PilotState

NOW = 1_800_000_000.0

# condor_ping -verbose output captured from HTCondor 25.0.13 against the condor_pool fixture's pool
PING_OK = """Destination:                 collector <127.0.0.1:32093>
Instruction:                 ADVERTISE_STARTD
Authenticated using:         IDTOKENS
Remote Mapping:              pilot-x@campus-factory
Authorized:                  TRUE
"""
PING_DENIED = (
    "ADVERTISE_STARTD failed!\n"
    'SECMAN:2010:Received "DENIED" from server for user pilot-x@campus-factory using method IDTOKENS.\n'
)
PING_AUTH = "ADVERTISE_STARTD failed!\nAUTHENTICATE:1004:Failed to authenticate using IDTOKENS\n"
PING_NONE = (
    "ADVERTISE_STARTD failed!\n"
    "SECMAN:2011:Connection closed during command authorization. Probably due to an unknown command.\n"
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def fake_token(sub: str, scope: str | None, exp: float = NOW + 7200) -> str:
    body: dict[str, object] = {"sub": sub, "iss": "localhost", "exp": int(exp), "iat": int(NOW)}
    if scope is not None:
        body["scope"] = " ".join(f"condor:/{s}" for s in scope.split())
    enc = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{enc}.c2ln"


def verdict(token: str, pings: list[PingResult], allow: dict[str, str | None] | None = None):
    return token_verdict(
        "pilot token [a]",
        token_claims(token),
        pings,
        expected_identity="pilot-a@cf",
        needed=("ADVERTISE_STARTD", "ADVERTISE_MASTER", "READ"),
        allow=allow or {},
        lifetime_wanted=3600,
        now=NOW,
    )


# -- pure parts -----------------------------------------------------------------------------------
def test_parse_ping() -> None:
    ok = parse_ping("ADVERTISE_STARTD", PING_OK)
    assert ok.authorized and ok.identity == "pilot-x@campus-factory"
    denied = parse_ping("ADVERTISE_STARTD", PING_DENIED)
    assert (denied.authorized, denied.kind, denied.identity) == (False, "denied", "pilot-x@campus-factory")
    assert parse_ping("ADVERTISE_STARTD", PING_AUTH).kind == "authentication"
    assert parse_ping("ADVERTISE_STARTD", PING_NONE).kind == "no-methods"


def test_token_verdicts() -> None:
    full = "ADVERTISE_STARTD ADVERTISE_MASTER READ"
    good = [PingResult("ADVERTISE_STARTD", True, "pilot-a@cf"), PingResult("ADVERTISE_MASTER", True, "pilot-a@cf")]
    assert verdict(fake_token("pilot-a@cf", full), good).status == "ok"
    assert verdict(fake_token("pilot-a@cf", None), good).status == "ok"  # no scope: all rights
    denied = [PingResult("ADVERTISE_STARTD", False, "pilot-a@cf", "denied", "DENIED"), good[1]]
    lacking = verdict(fake_token("pilot-a@cf", "ADVERTISE_MASTER READ"), denied)
    assert lacking.status == "fail" and "lacks the ADVERTISE_STARTD authorization" in lacking.message
    assert "refuses the pilots' token for ADVERTISE_STARTD" in lacking.message
    allow = verdict(fake_token("pilot-a@cf", full), denied, {"ADVERTISE_STARTD": "pilot-*@other"})
    assert allow.status == "fail" and "ALLOW_ADVERTISE_STARTD is 'pilot-*@other'" in allow.message
    expired = verdict(fake_token("pilot-a@cf", full, exp=NOW - 5), good)
    assert expired.status == "fail" and "expired" in expired.message
    other = verdict(fake_token("intruder@cf", full), good)
    assert other.status == "fail" and "not pilot-a@cf" in other.message
    short = verdict(fake_token("pilot-a@cf", full, exp=NOW + 600), good)
    assert short.status == "warn" and "lives 0.2 h" in short.message
    auth = verdict(fake_token("pilot-a@cf", full), [PingResult("ADVERTISE_STARTD", False, None, "authentication", "x")])
    assert auth.status == "fail" and "signed with a key the collector has" in auth.hint
    with pytest.raises(ValueError):
        token_claims("not-a-token")


def record(pid: str, state: PilotState, started: float | None, joined: float | None = None) -> PilotRecord:
    return PilotRecord(
        pid, "campus", "alpha", "s1", 0, "1" + pid[-1], state, 1, 100, 0, 0, 3600.0,
        started or NOW - 100, NOW, started, joined, None, None, "",
    )  # fmt: skip


def test_join_checks_name_black_holes() -> None:
    cfg = parse_config({"sites": [{"name": "alpha", "provider": "fake"}]})
    fine = [record("p1", PilotState.JOINED, NOW - 3000, NOW - 2990)]
    assert join_checks(cfg, fine, NOW)[0].status == "ok"
    stuck = [record(f"p{i}", PilotState.RUNNING, NOW - 3000) for i in range(3)]
    (check,) = join_checks(cfg, stuck, NOW)
    assert check.status == "fail" and "never join" in check.message and "running for more than 10 min" in check.message
    assert "firewall" in check.hint and "pilot.ccb" in check.hint and "queue_allowance" in check.hint
    one = join_checks(cfg, [*fine, record("p9", PilotState.ENDED, NOW - 3000)], NOW)[0]
    assert one.status == "warn" and "1 ended without ever joining" in one.message


def test_rank_check() -> None:
    assert rank_check("(10000000 * My.Rank) - 1000000000 * (Offline =?= True)").status == "ok"
    bad = rank_check("")
    assert bad.status == "fail" and "NEGOTIATOR_PRE_JOB_RANK" in bad.message
    assert rank_check(None, "permission denied").status == "warn"


# -- a broken submit command ----------------------------------------------------------------------
def site_config(tmp_path: Path, environment: dict[str, str]) -> Path:
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in environment.items())
    path = tmp_path / "campus.toml"
    path.write_text(
        f"""
[pool]
collector = "127.0.0.1:9"
[factory]
ledger_url = "sqlite:///{tmp_path}/ledger.sqlite"
[pilot]
payload = "command"
[[sites]]
name = "alpha"
provider = "slurm"
batch = {{ work_dir = "{tmp_path}/pilots", environment = {{ {env} }} }}
""",
        encoding="utf-8",
    )
    return path


def test_broken_queue_command_names_site_and_stderr(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("squeue", "sbatch"):
        (bin_dir / name).write_text(
            "#!/bin/sh\n"
            "echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2\n"
            "exit 1\n"
        )
        (bin_dir / name).chmod(0o755)
    cfg = site_config(tmp_path, {"PATH": f"{bin_dir}:/usr/bin:/bin"})
    r = invoke("-c", str(cfg), "doctor", "--timeout", "5")
    assert r.exit_code == 1
    line = next(ln for ln in r.output.splitlines() if "site [alpha] queue" in ln)
    assert line.startswith("FAIL") and "alpha: its queue command failed" in line
    assert "Unable to contact slurm controller (connect failure)" in line
    assert "squeue --me" in line  # the command to try by hand
    checks = {c["name"]: c for c in json.loads(invoke("-c", str(cfg), "doctor", "--json", "--timeout", "5").output)}
    assert checks["collector"]["status"] == "fail" and "127.0.0.1:9" in checks["collector"]["message"]
    assert checks["pilot token"]["status"] == "skip"


@pytest.mark.slurm
def test_missing_slurm_conf_is_reported(slurm_cluster, tmp_path: Path) -> None:
    # the real squeue (the fixture installs Slurm's client commands), pointed at a slurm.conf that is not there
    cfg = site_config(tmp_path, {"SLURM_CONF": f"{tmp_path}/missing/slurm.conf"})
    r = invoke("-c", str(cfg), "doctor", "--json", "--timeout", "2")
    assert r.exit_code == 1
    checks = {c["name"]: c for c in json.loads(r.output)}
    queue = checks["site [alpha] queue"]
    assert queue["status"] == "fail" and "alpha" in queue["message"]
    assert f"{tmp_path}/missing/slurm.conf" in queue["message"]  # squeue's own stderr


# -- against a real pool --------------------------------------------------------------------------
WRAPPER = """#!/bin/bash
# a minting command that drops "-authz ADVERTISE_STARTD"
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = -authz ] && [ "$2" = ADVERTISE_STARTD ]; then shift 2; continue; fi
  args+=("$1"); shift
done
exec {prefix}/bin/condor_token_create "${{args[@]}}"
"""


def pool_config(pool, tmp_path: Path, command: str, identity: str = "pilot-{site}@campus-factory") -> Path:
    path = tmp_path / "campus.toml"
    path.write_text(
        f"""
[pool]
collector = "{pool.collector}"
offline_ads = true
[factory]
ledger_url = "sqlite:///{tmp_path}/ledger.sqlite"
[pilot]
payload = "glidein"
[pilot.token]
command = ["{command}"]
identity = "{identity}"
environment = {{ CONDOR_CONFIG = "{pool.config_file}" }}
[[sites]]
name = "here"
provider = "local"
batch = {{ work_dir = "{tmp_path}/pilots" }}
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.htcondor
def test_doctor_against_a_real_pool(condor_pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    good = pool_config(condor_pool, tmp_path, f"{condor_pool.prefix}/bin/condor_token_create")
    r = invoke("-c", str(good), "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.output)}
    assert r.exit_code == 0, checks
    assert checks["pilot token [here]"]["status"] == "ok"
    assert (
        "accepts pilot-here@campus-factory for ADVERTISE_STARTD and ADVERTISE_MASTER"
        in (checks["pilot token [here]"]["message"])
    )
    assert checks["offline ads: negotiator rank"]["status"] == "ok"  # the fixture installs condor-config
    assert checks["offline ads: published"]["status"] == "warn"  # the factory has not run

    # a token without ADVERTISE_STARTD: doctor names the missing authorization
    wrapper = tmp_path / "mint.sh"
    wrapper.write_text(WRAPPER.format(prefix=condor_pool.prefix))
    wrapper.chmod(0o755)
    r = invoke("-c", str(pool_config(condor_pool, tmp_path, str(wrapper))), "doctor")
    assert r.exit_code == 1
    line = next(ln for ln in r.output.splitlines() if "pilot token [here]" in ln)
    assert line.startswith("FAIL")
    assert "refuses the pilots' token for ADVERTISE_STARTD" in line and "lacks the ADVERTISE_STARTD" in line

    # an identity the pool's ALLOW_ADVERTISE_STARTD does not list
    cfg = pool_config(condor_pool, tmp_path, f"{condor_pool.prefix}/bin/condor_token_create", "intruder-{site}@pool")
    checks = {c["name"]: c for c in json.loads(invoke("-c", str(cfg), "doctor", "--json").output)}
    token = checks["pilot token [here]"]
    assert token["status"] == "fail", token
    assert "does not authorize intruder-here@pool for ADVERTISE_STARTD" in token["message"]
    assert "pilot-*@campus-factory" in token["message"]  # the pool's ALLOW list, read from the collector


# -- against the real Slurm cluster ----------------------------------------------------------------
def slurm_site_config(tmp_path: Path, cluster, slot: str) -> Path:
    path = tmp_path / "campus.toml"
    path.write_text(
        f"""
[pool]
collector = "127.0.0.1:9"
[factory]
name = "doctest"
ledger_url = "sqlite:///{tmp_path}/ledger.sqlite"
[pilot]
payload = "command"
[[sites]]
name = "alpha"
provider = "slurm"
walltime = "1h"
slot = {slot}
batch = {{ work_dir = "{tmp_path}/pilots", environment = {{ SLURM_CONF = "{cluster.conf}" }} }}
""",
        encoding="utf-8",
    )
    return path


def doctor_checks(cfg: Path) -> dict[str, dict[str, str]]:
    r = invoke("-c", str(cfg), "doctor", "--json", "--timeout", "30")
    return {c["name"]: c for c in json.loads(r.output)}


@pytest.mark.slurm
def test_doctor_tries_the_sites_own_slot_and_counts_live_pilots(slurm_cluster, tmp_path: Path) -> None:
    """The cluster's nodes have 4 cpus / 4000 MB: a slot of 8 cpus / 50 GB must fail the submit
    check (a 1-cpu dummy would pass); ended pilots of ours do not count as in the queue."""
    import os
    import subprocess
    import time

    big = doctor_checks(slurm_site_config(tmp_path, slurm_cluster, "{ cpus = 8, memory_mb = 50000 }"))
    submit = big["site [alpha] submit"]
    assert submit["status"] == "fail", submit
    assert "8 cpu(s), 50000 MB" in submit["message"] and "slot" in submit["hint"]
    fits = doctor_checks(slurm_site_config(tmp_path, slurm_cluster, "{ cpus = 2, memory_mb = 1000 }"))
    assert fits["site [alpha] submit"]["status"] == "ok", fits["site [alpha] submit"]
    assert "2 cpu(s), 1000 MB" in fits["site [alpha] submit"]["message"]

    env = {**os.environ, **slurm_cluster.env}

    def sbatch(name: str, command: str) -> str:
        argv = ["sbatch", "--parsable", f"--job-name={name}", "-o", "/dev/null", "--wrap", command]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=True).stdout.strip()

    done, running = sbatch("cf-doctest-ended", "true"), sbatch("cf-doctest-running", "sleep 300")
    try:
        deadline = time.monotonic() + 120
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["squeue", "-h", "-t", "all", "-o", "%i %T"], env=env, capture_output=True, text=True, timeout=30
            ).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if states.get(done) == "COMPLETED" and states.get(running) == "RUNNING":
                break
            time.sleep(0.5)
        assert (states.get(done), states.get(running)) == ("COMPLETED", "RUNNING"), states
        queue = doctor_checks(slurm_site_config(tmp_path, slurm_cluster, "{ cpus = 1, memory_mb = 100 }"))
        assert queue["site [alpha] queue"]["message"] == "answers; 1 of our pilots in its queue (1 ended)"
    finally:
        subprocess.run(["scancel", done, running], env=env, capture_output=True, timeout=30)
