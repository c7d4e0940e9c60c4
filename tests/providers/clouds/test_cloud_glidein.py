"""A cloud pilot end to end: EC2 (moto) starts the VM, its user-data makes it a glidein that joins a
real pool, a cloud-only job runs on it, the pilot leaves when idle and the VM powers off
(markers `ec2` and `htcondor`).

No VM boots here, so the test plays the guest: for each instance moto reports running it fetches
the user-data as the guest would, runs cloud-init's script on this host (with stub `shutdown` and
`iptables`: this host is not the VM), and when the script ends it powers the instance off the way
EC2 reports an OS shutdown (``Client.InstanceInitiatedShutdown``, terminated).

The config mixes payloads: ``pilot.payload = "command"`` for the campus, ``payload = "glidein"``
on the cloud site.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.pilot.test_glidein_pool import SAME_HOST, job_field, submit

from campus_factory.config import Config, parse_config
from campus_factory.ledger import PilotState
from campus_factory.loop.assemble import build_factory
from campus_factory.pilot.cloudinit import SCRIPT_PATH

pytestmark = [pytest.mark.ec2, pytest.mark.htcondor]


def cloud_config(pool: Any, ec2: Any, tmp_path: Path, tag: str) -> Config:
    return parse_config(
        {
            "pool": {"collector": pool.collector, "job_constraint": f'CampusFactoryTest == "{tag}"'},
            "factory": {"name": tag, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite", "cycle_interval": 2},
            "pilot": {
                "payload": "command",  # the campus default; the cloud site overrides it
                "condor_locations": [str(pool.prefix)],
                "update_interval": 2,
                "retire_margin": 60,
                "token": {
                    "command": [f"{pool.prefix}/bin/condor_token_create"],
                    "environment": {"CONDOR_CONFIG": str(pool.config_file)},
                },
                # the startd leaves after 5 s without a job, before the factory's idle_timeout
                # would terminate the instance: this test follows the power-off path
                "extra_config": {**SAME_HOST, "STARTD_NOCLAIM_SHUTDOWN": "5"},
            },
            "sites": [
                {
                    "name": "here",  # the test jobs' Requirements name it
                    "provider": "ec2",
                    "payload": "glidein",
                    "idle_timeout": 15,
                    "walltime": "20m",
                    "cost_per_core_hour": 0.05,
                    "slot": {"cpus": 1, "memory_mb": 512, "disk_mb": 0},
                    "limits": {"max_pilots": 1, "max_queued": 1, "max_submit_per_cycle": 1},
                    "cloud": {
                        "endpoint_url": ec2.url,
                        "image": ec2.image(),
                        "instance_type": "t3.micro",
                        "join_timeout": "5m",
                    },
                }
            ],
        }
    )


class Guests:
    """Plays the VMs: runs each running instance's user-data script once, powers it off after."""

    def __init__(self, ec2: Any, tmp_path: Path) -> None:
        self.ec2 = ec2
        self.dir = tmp_path / "guests"
        self.bin = tmp_path / "guest-bin"
        self.bin.mkdir()
        for name in ("shutdown", "iptables"):
            stub = self.bin / name
            stub.write_text(f'#!/bin/sh\n[ "$1" = -C ] && exit 1\necho "$@" >> {tmp_path}/{name}.calls\n')
            stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.exits: dict[str, int] = {}

    def step(self) -> None:
        states = {i["InstanceId"]: i["State"]["Name"] for i in self.ec2.instances(live_only=False)}
        for iid, state in states.items():
            if state == "running" and iid not in self.running:
                self.running[iid] = self._boot(iid)
        for iid, proc in self.running.items():
            if iid in self.exits:
                continue
            if proc.poll() is not None:
                self.exits[iid] = proc.returncode
                self.ec2.poweroff(iid)  # cloud-init's power_state: the script ended
            elif states.get(iid) != "running":  # terminated from outside: the OS shutdown sends TERM
                proc.terminate()
                self.exits[iid] = proc.wait(60)

    def _boot(self, iid: str) -> subprocess.Popen[bytes]:
        doc = yaml.safe_load(self.ec2.user_data(iid))
        assert doc["power_state"]["mode"] == "poweroff"
        files = {f["path"]: f for f in doc["write_files"]}
        assert files[SCRIPT_PATH]["permissions"] == "0700"
        home = self.dir / iid
        home.mkdir(parents=True)
        script = home / "campus-factory-pilot"
        script.write_text(files[SCRIPT_PATH]["content"])
        env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "CAMPUS_FACTORY_WORK_DIR": str(home),
            "CONDOR_CONFIG": "/dev/null",  # the VM has no pool config of its own
        }
        env.pop("_CONDOR_CONDOR_IDS", None)
        log = (home / "console.log").open("wb")
        return subprocess.Popen(["bash", str(script)], env=env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        for proc in self.running.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def console(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.dir.glob("*/console.log"))


def test_cloud_pilot_joins_runs_a_cloud_only_job_and_powers_off(
    condor_pool: Any, ec2: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import htcondor2

    pool = condor_pool
    monkeypatch.setenv("CONDOR_CONFIG", str(pool.config_file))
    htcondor2.reload_config()
    tag = "cg" + uuid.uuid4().hex[:6]
    cfg = cloud_config(pool, ec2, tmp_path, tag)
    assert cfg.joins_pool(cfg.sites[0]) and cfg.pilot.payload == "command"
    f = build_factory(cfg)
    job = submit(pool, tag, 3, '+CampusFactoryRoute = "cloud-only"')  # needs IsCloudNode
    guests = Guests(ec2, tmp_path)

    def until(cond: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            asyncio.run(f.run_once())
            guests.step()
            if cond():
                return True
            time.sleep(1)
        return False

    try:
        assert until(lambda: job_field(pool, job, "JobStatus") == "4", 240), (
            f"the cloud-only job never completed\n{guests.console()}"
        )
        assert job_field(pool, job, "ExitCode") == "0"
        assert "glidein-" in job_field(pool, job, "LastRemoteHost")
        # idle for idle_timeout: the startd leaves, the script ends, the VM powers off, the
        # factory reads the instance-initiated shutdown as a pilot that completed
        assert until(lambda: not f.ledger.live_pilots(tag), 180), f"the pilot never left\n{guests.console()}"
        assert list(guests.exits.values()) == [0], guests.console()
        (pilot,) = f.ledger.pilots(factory=tag)
        states = [t.to_state for t in f.ledger.transitions(pilot.pilot_id)]
        assert PilotState.JOINED in states and pilot.state is PilotState.ENDED, (states, pilot.reason)
        assert pilot.joined_at is not None and pilot.ended_at is not None
        # moto keeps the terminated instances of earlier tests: only this pilot's own
        (instance,) = [i for i in ec2.instances(live_only=False) if i["InstanceId"] == pilot.job_id]
        assert instance["State"]["Name"] == "terminated"
        assert instance["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
        console = guests.console()
        assert "CAMPUS_FACTORY_EXIT" in console and '"master_exit": 0' in console
        assert "169.254.169.254" in (tmp_path / "iptables.calls").read_text()  # jobs kept from the metadata
    finally:
        guests.stop()
        pool.run("condor_rm", job, check=False)
        left = [i["InstanceId"] for i in ec2.instances()]
        if left:  # a failed run: the ec2 fixture would report these as leaks on top of the failure
            ec2.client().terminate_instances(InstanceIds=left)
