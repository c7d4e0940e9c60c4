"""Crash-safety harness: SIGKILL the factory at random moments while it works real sites.

    python tests/chaos/harness.py --runs 200 [--seed 1] [--json]      (as root; `make chaos RUNS=N`)

It starts a two-node Slurm cluster (tests/services/slurm-up.sh) and a moto EC2 server
(tests/providers/clouds/moto_server.py), then, ``runs`` times: changes the demand at random,
starts ``campus-factory factory run`` (one-second cycles), kills it with SIGKILL after a random
delay, runs one clean cycle (``factory run --once``) and checks:

* **orphans**: a Slurm job or a live EC2 instance carrying the factory's tag that the ledger
  does not know as a live pilot;
* **over_limit**: more pilots at a site (in the ledger, in squeue or in EC2) than its max_pilots;
* **inconsistent**: a pilot whose state is not the last state of its transition history, a live
  pilot past ``requested`` without a job id, or two live pilots with the same job id.

It prints a JSON summary: ``{"runs", "orphans", "over_limit", "inconsistent", "seconds", ...}``
and exits 1 when any count is not zero.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
NAME = "chaos"


def free_port(n: int = 1) -> int:
    """A base port such that base .. base+n-1 are free on 127.0.0.1."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000 - n)
        socks = [socket.socket() for _ in range(n)]
        try:
            for i, s in enumerate(socks):
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def start_slurm(base: Path) -> dict[str, str]:
    port = free_port(3)
    env = {
        "CLUSTER": "chaos",
        "PORT_BASE": str(port),
        "NNODES": "2",
        "NODE_CPUS": "4",
        "NODE_MEM": "4000",
        "MIN_JOB_AGE": "60",
        "BASE": str(base),
    }
    subprocess.run(
        ["bash", str(TESTS / "services" / "slurm-up.sh")],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {**env, "SLURM_CONF": str(base / "etc" / "slurm.conf")}


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "providers" / "clouds" / "moto_server.py"), str(port)], stdout=fh, stderr=fh
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto did not start: {log.read_text()[-2000:]}")


def ec2_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ec2",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


def write_config(work: Path, slurm_conf: str, ec2_url: str, image: str) -> Path:
    toml = work / "campus.toml"
    toml.write_text(f"""
[factory]
name = "{NAME}"
ledger_url = "sqlite:///{work}/ledger.sqlite"
cycle_interval = 1
submission_grace = 20
[pilot]
command = ["sleep", "infinity"]
[[sites]]
name = "alpha"
provider = "slurm"
walltime = "30m"
idle_timeout = 1
slot = {{ cpus = 1, memory_mb = 100, disk_mb = 0 }}
limits = {{ max_pilots = 4, max_queued = 4, max_submit_per_cycle = 2 }}
batch = {{ environment = {{ SLURM_CONF = "{slurm_conf}" }}, work_dir = "{work}/pilots", command_timeout = 15 }}
[[sites]]
name = "cloud"
provider = "ec2"
walltime = "30m"
idle_timeout = 1
slot = {{ cpus = 2, memory_mb = 100, disk_mb = 0 }}
limits = {{ max_pilots = 3, max_queued = 3, max_submit_per_cycle = 2 }}
[sites.cloud]
endpoint_url = "{ec2_url}"
image = "{image}"
instance_type = "t3.micro"
max_attempts = 2
request_timeout = 10
""")
    return toml


def write_demand(path: Path, rng: random.Random) -> None:
    groups = [
        {"id": "small", "count": rng.randint(0, 6), "cpus": 1, "memory_mb": 100, "disk_mb": 0},
        {"id": "big", "count": rng.randint(0, 4), "cpus": 2, "memory_mb": 100, "disk_mb": 0},
    ]
    path.write_text(json.dumps({"groups": groups}))


def check(work: Path, env: dict[str, str], ec2: Any) -> dict[str, list[str]]:
    from campus_factory.ledger import LIVE, Ledger, PilotState

    ledger = Ledger.open(f"sqlite:///{work}/ledger.sqlite")
    try:
        pilots = ledger.pilots(factory=NAME)
        live = [p for p in pilots if p.state in LIVE]
        live_jobs = {p.job_id for p in live if p.job_id}
        out: dict[str, list[str]] = {"orphans": [], "over_limit": [], "inconsistent": []}
        squeue = subprocess.run(
            ["squeue", "--me", "-h", "-r", "-o", "%i|%j"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        jobs = [line.split("|")[0] for line in squeue if f"|cf-{NAME}-" in line]
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": "tag:cf-factory", "Values": [NAME]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        instances = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
        out["orphans"] += [f"slurm job {j}" for j in jobs if j not in live_jobs]
        tags = {
            i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            for p in ec2.get_paginator("describe_instances").paginate()
            for r in p["Reservations"]
            for i in r["Instances"]
        }
        by_job = {p.job_id: p for p in pilots}
        out["orphans"] += [
            f"instance {i} tags {tags.get(i)} ledger "
            + (f"{by_job[i].state.value} {by_job[i].reason}" if i in by_job else "none")
            for i in instances
            if i not in live_jobs
        ]
        for site, limit, seen in (("alpha", 4, len(jobs)), ("cloud", 3, len(instances))):
            n = sum(1 for p in live if p.site == site)
            if n > limit or seen > limit:
                out["over_limit"].append(f"{site}: {n} in the ledger, {seen} at the site, limit {limit}")
        for p in pilots:
            hist = ledger.transitions(p.pilot_id)
            if not hist or hist[-1].to_state is not p.state:
                out["inconsistent"].append(f"{p.pilot_id}: state {p.state.value}, history ends {hist[-1:]}")
            if p.state in LIVE and p.state is not PilotState.REQUESTED and not p.job_id:
                out["inconsistent"].append(f"{p.pilot_id}: {p.state.value} without a job id")
        if len(live_jobs) != len([p for p in live if p.job_id]):
            out["inconsistent"].append("two live pilots share a job id")
        return out
    finally:
        ledger.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only the JSON summary")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (ledger, logs) for inspection")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="cf-chaos-"))
    exe = Path(sys.executable).parent / "campus-factory"
    t0 = time.monotonic()
    slurm_env = {"CLUSTER": "chaos", "BASE": str(work / "slurm")}
    moto: subprocess.Popen[bytes] | None = None
    try:
        env = start_slurm(work / "slurm")
        moto, url = start_moto(work / "moto.log")
        return chaos_runs(args, rng, work, exe, t0, env, url)
    finally:  # also when a start failed half-way: nothing of ours outlives the harness
        if moto is not None:
            moto.terminate()
            try:
                moto.wait(30)
            except subprocess.TimeoutExpired:
                moto.kill()
        subprocess.run(
            ["bash", str(TESTS / "services" / "slurm-down.sh")],
            env={**os.environ, **slurm_env},
            capture_output=True,
            timeout=300,
        )
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def chaos_runs(
    args: argparse.Namespace, rng: random.Random, work: Path, exe: Path, t0: float, env: dict[str, str], url: str
) -> int:
    """The runs themselves, against a started Slurm cluster and moto server; the summary's exit code."""
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    run_env = {**os.environ, **aws}
    ec2 = ec2_client(url)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    toml = write_config(work, env["SLURM_CONF"], url, image)
    demand = work / "demand.json"
    totals = {"orphans": 0, "over_limit": 0, "inconsistent": 0}
    examples: list[str] = []
    kills_during_work = 0
    try:
        for run in range(args.runs):
            write_demand(demand, rng)
            proc = subprocess.Popen(
                [str(exe), "-c", str(toml), "factory", "run", "--demand-file", str(demand)],
                env=run_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.8, 4.0))
            kills_during_work += proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            once = subprocess.run(
                [str(exe), "-c", str(toml), "factory", "run", "--once", "--demand-file", str(demand)],
                env=run_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            (work / f"once-{run}.log").write_text(once.stdout + once.stderr)
            if once.returncode != 0:
                examples.append(f"run {run}: the clean cycle exited {once.returncode}: {once.stderr[-500:]}")
            found = check(work, env, ec2)
            for key, items in found.items():
                totals[key] += len(items)
                examples += [f"run {run}: {key}: {i}" for i in items[:3]]
            if not args.json:
                print(f"run {run + 1}/{args.runs}: {json.dumps({k: len(v) for k, v in found.items()})}", flush=True)
    finally:
        live = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
        ids = [i["InstanceId"] for r in live["Reservations"] for i in r["Instances"]]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
    summary = {
        "runs": args.runs,
        **totals,
        "killed_while_running": kills_during_work,
        "seconds": round(time.monotonic() - t0, 1),
        "seed": args.seed,
        "examples": examples[:20],
    }
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if not any(totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
