"""Cloud service fixtures: a moto EC2 server (marker `ec2`) and mimic (marker `openstack`).

Both listen on 127.0.0.1 on a free port and live for the session. The per-test fixtures
(``ec2``, ``nova``) reset injected faults and, when the test ends, assert that it left no
instance running (and terminate any it left, so one leak fails one test only).

moto runs from the project venv (`moto[server]` is in the `test` extra), wrapped by
``moto_server.py`` for boot delay and fault injection. mimic runs with ``twistd`` from the
project venv when it is installed there, else from a venv the fixture makes under /tmp.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import free_port_range, service_unavailable

from campus_factory.config import Config, SiteConfig, parse_config
from campus_factory.domain import PilotRequest
from campus_factory.providers.base import Submission

HERE = Path(__file__).parent
MIMIC_VENV = Path("/tmp/campus-factory-mimic-venv")


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    service_unavailable(f"server on port {port}", log.read_text(errors="replace") if log.exists() else "")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s: the server never outlives its fixture."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def _post(url: str, body: Any = None, method: str = "POST", headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw.strip() else None


# -- EC2: moto ----------------------------------------------------------------------------------
@dataclass
class MotoServer:
    url: str
    proc: subprocess.Popen[bytes]

    def fault(self, action: str, code: str, *, status: int = 400, times: int = 1, message: str = "") -> None:
        msg = message or f"injected {code}"
        _post(f"{self.url}/_fault", {"action": action, "code": code, "status": status, "times": times, "message": msg})

    def reset(self, boot_seconds: float = 0.0) -> None:
        _post(f"{self.url}/_fault/clear", {})
        _post(f"{self.url}/_config", {"boot_seconds": boot_seconds})

    def poweroff(self, instance_id: str) -> None:
        """The guest OS powered off (cloud-init's power_state after the pilot script ended)."""
        _post(f"{self.url}/_poweroff", {"instance_id": instance_id})

    def user_data(self, instance_id: str) -> str:
        """The user-data an instance was started with, as its guest would fetch it."""
        attr = self.client().describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        return base64.b64decode(attr["UserData"]["Value"]).decode()

    def calls(self, action: str) -> int:
        return int(_post(f"{self.url}/_stats", {})["calls"].get(action, 0))

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "ec2",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )

    def instances(self, *, live_only: bool = True) -> list[dict[str, Any]]:
        pages = self.client().get_paginator("describe_instances").paginate()
        out = [i for p in pages for r in p["Reservations"] for i in r["Instances"]]
        return [i for i in out if not live_only or i["State"]["Name"] not in ("terminated", "shutting-down")]

    def image(self) -> str:
        return str(self.client().describe_images(Owners=["amazon"])["Images"][0]["ImageId"])


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401
    except ImportError as exc:
        service_unavailable("moto server", f"install the test extra (moto[server]): {exc}")
    port = free_port_range(1)
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, str(HERE / "moto_server.py"), str(port)], stdout=fh, stderr=fh)
    try:
        _wait_port(port, proc, 120, log)
        yield MotoServer(f"http://127.0.0.1:{port}", proc)
    finally:
        _stop(proc)


@pytest.fixture
def ec2(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """The moto server for one test: credentials in the environment, no faults, no boot delay;
    afterwards no instance may be left running."""
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(k, v)
    moto_server.reset()
    yield moto_server
    moto_server.reset()
    left = moto_server.instances()
    if left:
        moto_server.client().terminate_instances(InstanceIds=[i["InstanceId"] for i in left])
    assert not left, f"instances left running in moto: {[(i['InstanceId'], i.get('Tags')) for i in left]}"


# -- OpenStack: mimic ---------------------------------------------------------------------------
@dataclass
class Mimic:
    url: str
    proc: subprocess.Popen[bytes]
    tenant: str = "cftenant"
    nova: str = ""
    control: str = ""
    token: str = ""
    behaviors: list[str] = field(default_factory=list)

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v2.0"

    def login(self) -> None:
        body = {"auth": {"passwordCredentials": {"username": "cfuser", "password": "pw"}, "tenantName": self.tenant}}
        access = _post(f"{self.auth_url}/tokens", body)["access"]
        self.token = access["token"]["id"]
        for entry in access["serviceCatalog"]:
            urls = [e["publicURL"] for e in entry["endpoints"] if e.get("region") == "ORD"]
            if entry["name"] == "cloudServersOpenStack" and urls:
                self.nova = urls[0]
            elif entry["name"] == "cloudServersBehavior" and urls:
                self.control = urls[0]

    def clouds_yaml(self, path: Path) -> Path:
        cloud = {
            "auth_type": "v2password",
            "auth": {
                "auth_url": self.auth_url,
                "username": "cfuser",
                "password": "pw",
                "project_name": self.tenant,
            },
            "region_name": "ORD",
            "compute_service_name": "cloudServersOpenStack",
        }
        path.write_text(json.dumps({"clouds": {"mimic": cloud}}))  # JSON is YAML
        return path

    def behave(self, name: str, parameters: dict[str, Any] | None = None, server_name: str = ".*") -> None:
        """Register a server-creation behaviour (build, error, fail) for matching names."""
        body = {"name": name, "parameters": parameters or {}, "criteria": [{"server_name": server_name}]}
        self.behaviors.append(_post(f"{self.control}/behaviors/creation", body)["id"])

    def clear(self) -> None:
        for b in self.behaviors:
            _post(f"{self.control}/behaviors/creation/{b}", method="DELETE")
        self.behaviors.clear()

    def tick(self, seconds: float) -> None:
        _post(f"{self.url}/mimic/v1.1/tick", {"amount": seconds})

    def set_status(self, server_id: str, status: str) -> None:
        _post(f"{self.control}/attributes/", {"status": {server_id: status}})

    def servers(self) -> list[dict[str, Any]]:
        got = _post(f"{self.nova}/servers/detail", method="GET", headers={"X-Auth-Token": self.token})
        return list(got["servers"])

    def delete(self, server_id: str) -> None:
        _post(f"{self.nova}/servers/{server_id}", method="DELETE", headers={"X-Auth-Token": self.token})


def _twistd() -> Path:
    """twistd of a Python that has mimic: the project venv's, else a venv made for it."""
    here = Path(sys.executable).parent / "twistd"
    probe = subprocess.run([sys.executable, "-c", "import mimic"], capture_output=True)
    if probe.returncode == 0 and here.exists():
        return here
    twistd = MIMIC_VENV / "bin" / "twistd"
    if not twistd.exists():
        steps = [
            [sys.executable, "-m", "venv", str(MIMIC_VENV)],
            [str(MIMIC_VENV / "bin" / "pip"), "install", "-q", "mimic==2.2.0"],
        ]
        for argv in steps:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                service_unavailable("mimic", f"{argv}: {proc.stdout}\n{proc.stderr}")
    return twistd


@pytest.fixture(scope="session")
def mimic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mimic]:
    twistd = _twistd()
    port = free_port_range(1)
    base = tmp_path_factory.mktemp("mimic")
    log = base / "mimic.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [str(twistd), "-n", "--pidfile=", "mimic", "-l", f"tcp:{port}:interface=127.0.0.1"],
            stdout=fh,
            stderr=fh,
            cwd=base,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    server = Mimic(f"http://127.0.0.1:{port}", proc)
    try:
        _wait_port(port, proc, 120, log)
        server.login()
        if not server.nova or not server.control:
            service_unavailable("mimic", "no Nova endpoint in its catalog: " + log.read_text(errors="replace"))
        yield server
    finally:
        _stop(proc)


@pytest.fixture
def nova(mimic_server: Mimic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mimic]:
    """mimic for one test, with no behaviours; afterwards no server may be left."""
    for k in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(k)
    mimic_server.clear()
    yield mimic_server
    mimic_server.clear()
    left = mimic_server.servers()
    for s in left:
        mimic_server.delete(s["id"])
    assert not left, f"servers left in mimic: {[(s['id'], s['name'], s['status']) for s in left]}"


# -- configs and submissions the cloud tests share ---------------------------------------------
def cloud_config(tmp_path: Path, name: str, site: dict[str, Any], **cloud: Any) -> Config:
    """A factory ``name`` with one cloud site: ``site`` over small 1-core pilot defaults, its
    ``cloud`` table updated with ``cloud``."""
    return parse_config(
        {
            "factory": {
                "name": name,
                "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite",
                "cycle_interval": 1,
                "submission_grace": 30,
            },
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {
                    "walltime": "1h",
                    "idle_timeout": 1,
                    "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0},
                    "limits": {"max_pilots": 4, "max_queued": 4, "max_submit_per_cycle": 4},
                    **site,
                    "cloud": {**site["cloud"], **cloud},
                }
            ],
        }
    )


def ec2_config(tmp_path: Path, ec2: MotoServer, name: str, **cloud: Any) -> Config:
    """Site ``cloud`` on the moto server: t3.micro instances of its first image, 3 attempts."""
    cloud_table = {
        "endpoint_url": ec2.url,
        "image": ec2.image(),
        "instance_type": "t3.micro",
        "max_attempts": 3,
        "request_timeout": 10,
    }
    return cloud_config(
        tmp_path, name, {"name": "cloud", "provider": "ec2", "cost_per_core_hour": 0.05, "cloud": cloud_table}, **cloud
    )


def openstack_config(tmp_path: Path, nova: Mimic, name: str, **cloud: Any) -> Config:
    """Site ``os1`` on mimic (region ORD), from a clouds.yaml written into ``tmp_path``."""
    cloud_table = {
        "credentials_file": str(nova.clouds_yaml(tmp_path / "clouds.yaml")),
        "profile": "mimic",
        "region": "ORD",
        "image": "img-pilot",
        "instance_type": "512MB Standard Instance",
        "request_timeout": 10,
    }
    return cloud_config(tmp_path, name, {"name": "os1", "provider": "openstack", "cloud": cloud_table}, **cloud)


def cloud_submission(site: SiteConfig, factory: str, n: int) -> Submission:
    """``n`` 1-core pilots of ``site`` in one submission tagged for ``factory``."""
    sub = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"{site.name}-{uuid.uuid4().hex[:10]}", 1, 100, 0, 0, 3600.0) for _ in range(n))
    return Submission(sub, f"cf-{factory}-{sub}", pilots)
