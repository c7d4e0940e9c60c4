"""Cloud-init user-data: structure, quoting, and the pilot script run for real."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from campus_factory.errors import NotSupportedError, UnsafeValueError
from campus_factory.pilot.cloudinit import (
    CONFIG_PATH,
    SCRIPT_PATH,
    CloudPilot,
    render_pilot_script,
    render_user_data,
)
from campus_factory.pilot.glidein import GlideinSpec

NASTY = "a'b\"c $(touch /tmp/pwned) `id` \\ ; & | \u00e9\n# not a comment"


def pilot(**over: Any) -> CloudPilot:
    base: dict[str, Any] = {
        "pilot_id": "cloud-0123456789",
        "site": "cloud",
        "factory": "campus",
        "tag": "cf-campus-0123456789",
        "walltime_s": 3600.0,
        "command": ("sleep", "1"),
    }
    return CloudPilot(**{**base, **over})


def parsed(p: CloudPilot) -> dict[str, Any]:
    text = render_user_data(p)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def test_user_data_writes_tags_runs_the_pilot_and_powers_off() -> None:
    doc = parsed(pilot())
    files = {f["path"]: f for f in doc["write_files"]}
    conf = files[CONFIG_PATH]["content"]
    assert "IsCloudNode = True" in conf
    assert 'CampusFactorySite = "cloud"' in conf and 'CampusFactoryPilotId = "cloud-0123456789"' in conf
    assert "STARTD_ATTRS = $(STARTD_ATTRS) IsCloudNode" in conf
    assert files[SCRIPT_PATH]["permissions"] == "0700"  # it may hold the token
    assert files[SCRIPT_PATH]["content"] == render_pilot_script(pilot())
    assert doc["runcmd"] == [["/bin/bash", SCRIPT_PATH]]
    assert doc["power_state"]["mode"] == "poweroff" and doc["power_state"]["condition"] is True


def test_every_value_is_quoted() -> None:
    p = pilot(command=("echo", NASTY), environment={"CF_X": NASTY})
    script = parsed(p)["write_files"][1]["content"]
    assert script == render_pilot_script(p)  # the YAML layer round-trips exactly
    with pytest.raises(UnsafeValueError):  # a line break cannot reach an HTCondor config value
        render_user_data(pilot(site="x\nSTART = True"))
    with pytest.raises(UnsafeValueError):
        render_user_data(pilot(pilot_id="../etc"))
    with pytest.raises(UnsafeValueError):
        render_user_data(pilot(environment={"BAD-NAME": "1"}))


def glidein_spec(**over: Any) -> GlideinSpec:
    base: dict[str, Any] = {
        "collector": "cm.example.edu:9618",
        "site": "cloud",
        "factory": "campus",
        "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwIn0.c2ln",
        "cpus": 4,
        "memory_mb": 8000,
        "is_cloud": True,
        "condor_locations": ("/nonexistent/condor",),
    }
    return GlideinSpec(**{**base, **over})


def test_glidein_payload_runs_the_glidein_as_a_cloud_node() -> None:
    spec = glidein_spec()
    doc = parsed(pilot(payload="glidein", glidein=spec))
    script = {f["path"]: f for f in doc["write_files"]}[SCRIPT_PATH]["content"]
    assert "IsCloudNode = True" in script and "COLLECTOR_HOST = cm.example.edu:9618" in script
    assert spec.token in script  # hence mode 0700, and the metadata service blocked for jobs
    assert "iptables -I OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT" in script
    assert 'condor_master" -f &' in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True).returncode == 0
    assert len(render_user_data(pilot(payload="glidein", glidein=spec)).encode()) < 16384  # EC2's limit
    with pytest.raises(ValueError, match="IsCloudNode"):  # a glidein built for a batch site
        render_user_data(pilot(payload="glidein", glidein=glidein_spec(is_cloud=False)))
    with pytest.raises(NotSupportedError):
        render_user_data(pilot(payload="glidein"))


def _run(tmp_path: Path, p: CloudPilot, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the pilot script with stub `shutdown` and `iptables` on PATH (this host is not the VM)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("shutdown", "iptables"):
        stub = bin_dir / name
        # `iptables -C` (is the rule there?) answers no, so the script inserts it
        stub.write_text(f'#!/bin/sh\n[ "$1" = -C ] && exit 1\necho "$@" > {tmp_path}/{name}.args\n')
        stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    script = tmp_path / "pilot.sh"
    script.write_text(parsed(p)["write_files"][1]["content"])
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **(extra_env or {})}
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)


def test_the_script_runs_the_payload_with_quoted_values(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = pilot(
        command=(
            "bash",
            "-c",
            'printf %s "$1" > "$2"; echo "$CAMPUS_FACTORY_IS_CLOUD_NODE"; exit 3',
            "-",
            NASTY,
            str(out),
        ),
        walltime_s=600,
    )
    proc = _run(tmp_path, p)
    assert proc.returncode == 3, proc.stderr
    assert out.read_text() == NASTY
    assert "true" in proc.stdout and "leaving (rc=3, asked=0)" in proc.stdout
    assert (tmp_path / "shutdown.args").read_text().split()[:2] == ["-P", "+15"]  # walltime + 5 min margin
    assert not Path("/tmp/pwned").exists()


def test_glidein_without_htcondor_on_the_image_says_where_it_looked(tmp_path: Path) -> None:
    work = tmp_path / "work"
    p = pilot(payload="glidein", glidein=glidein_spec(scratch=str(tmp_path)))
    proc = _run(tmp_path, p, {"CAMPUS_FACTORY_WORK_DIR": str(work)})
    assert proc.returncode == 71, (proc.stdout, proc.stderr)
    assert "no HTCondor found" in proc.stderr and "/nonexistent/condor" in proc.stderr
    assert work.is_dir()
    if os.geteuid() == 0:  # root (as on a VM): the metadata service is closed to jobs
        assert (tmp_path / "iptables.args").read_text().split()[:3] == ["-I", "OUTPUT", "-d"]
    assert not list(tmp_path.glob("cf-pilot.*"))  # its scratch directory is removed
