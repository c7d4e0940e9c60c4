"""Flocking, proven with two real pools (marker `htcondor`): the Campus Grid Factory topology.

Users submit to the campus schedd of their own pool. Jobs the campus pool cannot run (more
memory than its only slot has) flock to the factory pool, where the factory starts pilots for
them (local provider); they complete there, and the pilots leave. Jobs the campus pool can run
never get a pilot, even while they wait for a campus slot and the schedd offers them to the
factory pool's negotiator. The pools are described in tests/loop/flockpools.py; docs/routes.md
walks through the same setup.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import kill_by_env
from tests.loop.flockpools import CAMPUS_MEMORY_MB, TwoPools, log_tails, two_personal_pools

from campus_factory.cli.main import cli
from campus_factory.config import Config, load_config, parse_config
from campus_factory.demand.flocking import CombinedDemand
from campus_factory.ledger import PilotState
from campus_factory.ledger.accounting import account, pilot_jobs
from campus_factory.loop.assemble import build_factory
from campus_factory.loop.factory import Factory

pytestmark = pytest.mark.htcondor

#: knobs for a glidein on the pools' own host (lab notes: no shared port, loopback, root)
SAME_HOST = {
    "NETWORK_INTERFACE": "127.0.0.1",
    "USE_SHARED_PORT": "False",
    "CONDOR_IDS": "0.0",
    "BASE_CGROUP": "",
    "USE_PID_NAMESPACES": "False",
    "ALLOW_DAEMON": "root@localhost",
}

#: an ordinary job: nothing in it names the factory, its pilots or the factory pool
JOB = """
executable = /bin/sleep
arguments = {seconds}
request_memory = {memory}
should_transfer_files = YES
transfer_executable = false
job_lease_duration = 60
+CampusFactoryTest = "{tag}"
queue {count}
"""


@pytest.fixture(scope="module")
def pools() -> Iterator[TwoPools]:
    with two_personal_pools() as p:
        yield p


@pytest.fixture
def factory_client(pools: TwoPools, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoPools]:
    """This process is the factory on the factory pool's central manager (its CONDOR_CONFIG)."""
    import htcondor2

    monkeypatch.setenv("CONDOR_CONFIG", str(pools.factory.config_file))
    htcondor2.reload_config()
    yield pools
    monkeypatch.undo()
    htcondor2.reload_config()


def factory_config(pools: TwoPools, tmp_path: Path, tag: str) -> Config:
    factory = pools.factory
    return parse_config(
        {
            "pool": {
                "collector": factory.collector,
                "job_constraint": f'CampusFactoryTest == "{tag}"',
                "flock_from": [
                    {"name": "campus", "collector": pools.campus.collector, "schedds": [pools.campus_schedd]}
                ],
            },
            "factory": {"name": tag, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "cycle_interval": 2},
            "pilot": {
                "payload": "glidein",
                "condor_locations": [str(factory.prefix)],
                "update_interval": 2,
                "retire_margin": 60,
                "token": {
                    "command": [f"{factory.prefix}/bin/condor_token_create"],
                    "environment": {"CONDOR_CONFIG": str(factory.config_file)},
                },
                "extra_config": SAME_HOST,
            },
            "sites": [
                {
                    "name": "here",
                    "provider": "local",
                    "idle_timeout": 15,
                    "walltime": "20m",
                    "slot": {"cpus": 1, "memory_mb": 2048, "disk_mb": 0},
                    "limits": {"max_pilots": 2, "max_queued": 2, "max_submit_per_cycle": 2},
                    "batch": {"work_dir": str(tmp_path / "pilots"), "term_margin": 60},
                }
            ],
        }
    )


def submit(pools: TwoPools, tag: str, *, memory: int, count: int, seconds: int) -> str:
    campus = pools.campus
    path = campus.submit_dir / f"{tag}-{uuid.uuid4().hex[:6]}.sub"
    path.write_text(JOB.format(seconds=seconds, memory=memory, count=count, tag=tag))
    path.chmod(0o644)
    out = campus.run("condor_submit", "-terse", str(path), user="nobody")
    return out.strip().split(" - ")[0].rsplit(".", 1)[0]  # "12.0 - 12.1" -> "12"


def jobs_of(pools: TwoPools, cluster: str, *attrs: str) -> list[list[str]]:
    """One row of ``attrs`` per job of the cluster, from the queue and the history."""
    campus = pools.campus
    rows = campus.run("condor_q", cluster, "-af", "ProcId", *attrs, check=False).splitlines()
    rows += campus.run("condor_history", cluster, "-af", "ProcId", *attrs, check=False).splitlines()
    seen: dict[str, list[str]] = {}
    for row in rows:
        proc, *rest = row.split()
        seen.setdefault(proc, rest)
    return [seen[p] for p in sorted(seen)]


def done(pools: TwoPools, cluster: str, count: int) -> bool:
    rows = jobs_of(pools, cluster, "JobStatus")
    return len(rows) == count and all(r == ["4"] for r in rows)


class Watch:
    """Runs factory cycles and records what each cycle planned for."""

    def __init__(self, f: Factory) -> None:
        self.f = f
        assert isinstance(f.demand, CombinedDemand)
        self.source = f.demand.flocked.sources[0]
        self.flocked_memory: set[int] = set()
        self.left_to_campus = 0

    def until(self, cond: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            report = asyncio.run(self.f.run_once())
            assert not [e for e in report.errors if "demand" in e], report.errors
            self.flocked_memory |= {g.memory_mb for g in self.source.last.flocking}
            self.left_to_campus = max(self.left_to_campus, self.source.last.left_to_campus)
            if cond():
                return True
            time.sleep(1)
        return False


def test_campus_jobs_that_cannot_run_there_flock_to_pilots_the_others_never_get_one(
    factory_client: TwoPools, tmp_path: Path
) -> None:
    pools = factory_client
    tag = "fl" + uuid.uuid4().hex[:6]
    f = build_factory(factory_config(pools, tmp_path, tag))
    watch = Watch(f)
    # 1. the campus pool is full of jobs it can run (3 on 2 cores): the schedd flocks the waiting
    #    one to the factory pool, but the factory starts no pilot for it
    small = submit(pools, tag, memory=64, count=3, seconds=6)
    try:
        assert watch.until(lambda: done(pools, small, 3), 120), jobs_of(pools, small, "JobStatus")
        assert watch.left_to_campus >= 1, "the waiting campus job was never seen idle"
        assert watch.flocked_memory == set()
        assert f.ledger.pilots(factory=tag) == []
        assert all("glidein" not in r[0] for r in jobs_of(pools, small, "LastRemoteHost"))

        # 2. jobs asking for more memory than any campus slot has flock, and pilots start for them
        t_big = time.time()
        big = submit(pools, tag, memory=4 * CAMPUS_MEMORY_MB, count=2, seconds=8)
        also_small = submit(pools, tag, memory=64, count=1, seconds=3)
        assert watch.until(lambda: done(pools, big, 2) and done(pools, also_small, 1), 240), (
            jobs_of(pools, big, "JobStatus", "LastRemoteHost"),
            [(p.pilot_id, p.state, p.reason) for p in f.ledger.pilots(factory=tag)],
            log_tails(pools),
        )
        assert watch.flocked_memory == {4 * CAMPUS_MEMORY_MB}, "a pilot was planned for campus-runnable jobs"
        ran = jobs_of(pools, big, "LastRemoteHost", "ExitCode")
        assert all("glidein-" in host and code == "0" for host, code in ran), ran
        ran_small = jobs_of(pools, also_small, "LastRemoteHost")
        assert all("glidein" not in r[0] for r in ran_small), ran_small

        # 3. the flocked demand is gone: the pilots leave
        assert watch.until(lambda: not f.ledger.live_pilots(tag), 120), "pilots did not leave"
        pilots = f.ledger.pilots(factory=tag)
        assert 1 <= len(pilots) <= 2
        joined = [p for p in pilots if p.joined_at is not None]
        assert joined and all(p.state is PilotState.ENDED for p in joined), [(p.state, p.reason) for p in pilots]

        # 4. the ledger counts the flocked runs: both big jobs, from the campus schedd
        runs = [r for p in pilots for r in pilot_jobs(f.ledger, p.pilot_id)]
        joins = [round((p.joined_at or 0) - t_big, 1) for p in pilots]
        ends = [round((p.ended_at or 0) - t_big, 1) for p in pilots]
        first = min(r.started_at for r in runs) - t_big
        # figures for docs/routes.md (seen with -s); nothing is asserted on them
        print(f"flocking: {len(pilots)} pilot(s), joined {joins} s, first flocked job {first:.1f} s, ended {ends} s")
        assert sorted(r.job_id.split("#")[1] for r in runs) == [f"{big}.0", f"{big}.1"]
        assert all(r.job_id.startswith(f"{pools.campus_schedd}#") and r.owner == "nobody" for r in runs)
        acc = account(f.ledger, since=0, until=time.time() + 1, by="owner", factory=tag)
        assert [r.group for r in acc.rows] == ["nobody"] and acc.rows[0].used_core_hours > 0
    finally:
        pools.campus.run("condor_rm", "-constraint", f'CampusFactoryTest == "{tag}"', check=False)
        for p in f.ledger.live_pilots(tag):
            if p.job_id:
                asyncio.run(f.providers["here"].cancel([p.job_id], graceful=False))
        for p in f.ledger.pilots(factory=tag):  # nothing of a pilot outlives the test
            kill_by_env("CAMPUS_FACTORY_PILOT_ID", p.pilot_id)


DOCTOR_CONFIG = """
[pool]
collector = "{factory}"
[[pool.flock_from]]
name = "campus"
collector = "{campus}"
schedds = ["{schedd}"]
schedd_identity = "{identity}"
[pilot]
payload = "glidein"
[pilot.token]
command = ["{prefix}/bin/condor_token_create"]
environment = {{ CONDOR_CONFIG = "{config}" }}
"""


def doctor(pools: TwoPools, tmp_path: Path, **over: str) -> dict[str, dict[str, str]]:
    fields = {
        "factory": pools.factory.collector,
        "campus": pools.campus.collector,
        "schedd": pools.campus_schedd,
        "identity": "flock-{name}@campus-factory",
        "prefix": str(pools.factory.prefix),
        "config": str(pools.factory.config_file),
        **over,
    }
    path = tmp_path / f"doctor-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(DOCTOR_CONFIG.format(**fields))
    res = CliRunner().invoke(cli, ["-c", str(path), "doctor", "--json"], catch_exceptions=False)
    return {c["name"]: c for c in json.loads(res.output)}


def test_doctor_checks_that_the_campus_schedd_may_flock_here(factory_client: TwoPools, tmp_path: Path) -> None:
    pools = factory_client
    name = pools.campus_schedd
    checks = doctor(pools, tmp_path)
    wanted = ("collector", "schedds", "campus collector [campus]", f"flock to [campus] {name}", "flock token [campus]")
    for check in wanted:
        assert checks[check]["status"] == "ok", checks[check]
    assert pools.factory.collector in checks[f"flock to [campus] {name}"]["message"]
    assert "accepts flock-campus@campus-factory for ADVERTISE_SCHEDD" in checks["flock token [campus]"]["message"]
    assert checks[f"flocking now [campus] {name}"]["status"] == "ok"

    # a job no campus slot can run: the schedd flocks it here, and doctor sees its submitter ad arrive
    tag = "dr" + uuid.uuid4().hex[:6]
    job = submit(pools, tag, memory=4 * CAMPUS_MEMORY_MB, count=1, seconds=1)
    try:
        end = time.monotonic() + 60
        while True:
            now = doctor(pools, tmp_path)[f"flocking now [campus] {name}"]
            if "flocks here now" in now["message"] or time.monotonic() > end:
                break
            time.sleep(2)
        assert now["status"] == "ok" and "submitter ad(s)" in now["message"], now
    finally:
        pools.campus.run("condor_rm", job, check=False)

    # an identity this pool's collector does not allow: refused, and the allow list is shown
    refused = doctor(pools, tmp_path, identity="intruder@campus-factory")["flock token [campus]"]
    assert refused["status"] == "fail", refused
    assert "does not authorize intruder@campus-factory" in refused["message"]
    assert "flock-campus@campus-factory" in refused["message"]  # ALLOW_ADVERTISE_SCHEDD, read from the collector
    assert "--flock-from" in refused["hint"]

    # a schedd whose FLOCK_TO names another pool (here: the factory's collector is not where it flocks)
    other = doctor(pools, tmp_path, factory=pools.campus.collector)[f"flock to [campus] {name}"]
    assert other["status"] == "fail" and "not to this pool's collector" in other["message"], other
    assert "condor-config --flock-to" in other["hint"]

    # a campus schedd the campus collector does not know
    missing = doctor(pools, tmp_path, schedd="nobody-schedd")["campus collector [campus]"]
    assert missing["status"] == "fail" and "does not know nobody-schedd" in missing["message"]


def test_init_finds_the_campus_schedd_and_writes_what_the_pools_run(factory_client: TwoPools, tmp_path: Path) -> None:
    pools = factory_client
    out = tmp_path / "init"
    args = ["init", "--non-interactive", "--collector", pools.factory.collector, "--provider", "local", "--strict"]
    args += ["--output-dir", str(out), "--ledger-url", f"sqlite:///{tmp_path}/init.sqlite", "--json"]
    res = CliRunner().invoke(cli, [*args, "--flock-from-collector", pools.campus.collector], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    cfg = load_config(out / "campus.toml")
    assert cfg.pool.flock_from[0].schedds == (pools.campus_schedd,)  # found in the campus collector
    running = {ln for p in (pools.factory, pools.campus) for ln in p.config_file.read_text().splitlines()}
    for name in ("60-campus-factory.conf", "61-campus-factory-routes.conf"):
        lines = [ln for ln in (out / "condor" / name).read_text().splitlines() if ln.startswith(("ALLOW_", "SEC_"))]
        assert lines and set(lines) <= running, set(lines) - running
    assert (
        "FLOCK_TO = $(FLOCK_TO) " + pools.factory.collector
        in (out / "condor" / "61-campus-factory-routes.conf").read_text()
    )
