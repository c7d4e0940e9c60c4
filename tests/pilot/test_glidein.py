"""The glidein bootstrap, run for real with a stand-in condor_master that records its config.

The stand-in behaves like the real master where it matters here: it reads $CONDOR_CONFIG, runs
until it gets QUIT or TERM, and exits 0. What is checked is what the bootstrap derives from each
scheduler's environment (slot size), what it advertises, the token file and its mode, the exit
summary, and the clean-up of its scratch directory.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from campus_factory.errors import UnsafeValueError
from campus_factory.pilot.glidein import GlideinSpec
from campus_factory.pilot.script import PilotScript, render_batch_script

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwaWxvdCJ9.c2lnbmF0dXJl"

FAKE_MASTER = """#!/usr/bin/env python3
# stand-in for condor_master -f: keep the config and the token, wait for QUIT (or TERM).
# Like the real master it installs its own handlers: a background job starts with QUIT ignored.
import os, shutil, signal, subprocess, sys, time
cfg = os.environ["CONDOR_CONFIG"]
out = os.environ["CF_TEST_OUT"]
local = os.path.dirname(cfg)
shutil.copy(cfg, os.path.join(out, "condor_config"))
token = os.path.join(local, "tokens.d", "campus-factory")
open(os.path.join(out, "token.mode"), "w").write(oct(os.stat(token).st_mode & 0o777)[2:])
shutil.copy(token, os.path.join(out, "token"))
open(os.path.join(out, "tokens.ls"), "w").write("\\n".join(os.listdir(os.path.join(local, "tokens.d"))))
open(os.path.join(out, "local_dir"), "w").write(local)
if os.environ.get("CF_TEST_EXIT_AT_ONCE"):
    sys.exit(0)
signal.signal(signal.SIGQUIT, lambda *a: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(0.1)
"""


def release(tmp_path: Path) -> Path:
    prefix = tmp_path / "condor"
    (prefix / "sbin").mkdir(parents=True)
    master = prefix / "sbin" / "condor_master"
    master.write_text(FAKE_MASTER)
    master.chmod(0o755)
    return prefix


def script(tmp_path: Path, **spec: object) -> Path:
    base: dict[str, object] = {
        "collector": "cm.example.edu:9618",
        "site": "alpha",
        "factory": "campus",
        "token": TOKEN,
        "cpus": 2,
        "memory_mb": 2000,
        "walltime_s": 3600,
        "idle_timeout_s": 300,
        "retire_margin_s": 120,
        "condor_locations": ("/nonexistent", str(release(tmp_path))),
        "summary_dir": str(tmp_path),
        "scratch": str(tmp_path / "scratch"),
        "attributes": {"HasTeam": '"physics"'},
        "start": 'TARGET.Owner == "alice"',
    }
    base.update(spec)
    (tmp_path / "scratch").mkdir(exist_ok=True)
    text = render_batch_script(
        PilotScript("#SBATCH", [], ["alpha-p1"], "glidein", ["true"], glidein=GlideinSpec(**base))  # type: ignore[arg-type]
    )
    path = tmp_path / "pilot.sh"
    path.write_text(text)
    return path


def run(path: Path, out: Path, env: dict[str, str], *, at_once: bool = True) -> subprocess.CompletedProcess[str]:
    out.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PBS_", "NSLOTS", "LSB_"))}
    full = {**clean, **env, "CF_TEST_OUT": str(out)}
    if at_once:
        full["CF_TEST_EXIT_AT_ONCE"] = "1"
    return subprocess.run(["bash", str(path)], env=full, capture_output=True, text=True, timeout=30)


def config(out: Path) -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in (out / "condor_config").read_text().splitlines() if " = " in line)
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.mark.parametrize(
    ("env", "cpus", "memory"),
    [
        ({"SLURM_CPUS_ON_NODE": "4", "SLURM_MEM_PER_NODE": "8000"}, "4", "8000"),
        ({"SLURM_CPUS_ON_NODE": "3", "SLURM_MEM_PER_CPU": "1500"}, "3", "4500"),  # --mem-per-cpu
        ({"PBS_NP": "6"}, "6", None),  # PBS: cpus only
        ({"NSLOTS": "5"}, "5", None),  # SGE
        ({"LSB_DJOB_NUMPROC": "7"}, "7", None),  # LSF
        ({}, "2", None),  # nothing granted: what was requested
        ({"SLURM_CPUS_ON_NODE": "four"}, "2", None),  # garbage is ignored
    ],
)
def test_slot_is_sized_to_the_allocation_granted(
    tmp_path: Path, env: dict[str, str], cpus: str, memory: str | None
) -> None:
    proc = run(script(tmp_path), tmp_path / "out", env)
    assert proc.returncode == 0, proc.stderr
    cfg = config(tmp_path / "out")
    assert cfg["NUM_CPUS"] == cpus
    if memory is not None:
        assert cfg["MEMORY"] == memory
    else:  # the cgroup limit when there is one, else the requested 2000 MB
        assert cfg["MEMORY"].isdigit() and int(cfg["MEMORY"]) > 0


def test_identity_policy_and_token(tmp_path: Path) -> None:
    proc = run(script(tmp_path), tmp_path / "out", {"SLURM_JOB_ID": "4242", "SLURM_CPUS_ON_NODE": "2"})
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    cfg = config(out)
    assert cfg["COLLECTOR_HOST"] == "cm.example.edu:9618"
    assert cfg["CampusFactorySite"] == '"alpha"' and cfg["CampusFactoryName"] == '"campus"'
    assert cfg["CampusFactoryPilotId"] == '"alpha-p1"' and cfg["CampusFactoryJobId"] == '"4242"'
    assert cfg["IsCloudNode"] == "False" and cfg["HasTeam"] == '"physics"'
    assert cfg["STARTD_NAME"] == "glidein-alpha-p1"
    assert "CampusFactoryPilotId" in cfg["STARTD_ATTRS"] and "IsCloudNode" in cfg["STARTD_ATTRS"]
    assert cfg["STARTD_NOCLAIM_SHUTDOWN"] == "300"
    assert cfg["CF_SITE_START"] == '(TARGET.Owner == "alice")'
    assert cfg["START"] == "$(CF_SITE_START) && (time() < MY.CampusFactoryPilotEnd - 120)"
    assert int(cfg["CampusFactoryPilotEnd"]) - time.time() == pytest.approx(3600, abs=30)
    assert cfg["SEC_DEFAULT_AUTHENTICATION"] == "REQUIRED"
    assert cfg["SEC_CLIENT_AUTHENTICATION_METHODS"] == "IDTOKENS, FS"
    assert (out / "token").read_text().strip() == TOKEN
    assert (out / "token.mode").read_text().strip() == "600"
    assert TOKEN not in proc.stdout + proc.stderr  # never printed
    # the exit summary: a line in the log and a file beside the pilot logs
    summary = json.loads((tmp_path / "alpha-p1.exit.json").read_text())
    assert summary["pilot_id"] == "alpha-p1" and summary["job_id"] == "4242" and summary["cpus"] == 2
    assert "CAMPUS_FACTORY_EXIT {" in proc.stdout
    # the private scratch directory is gone
    local_dir = Path((out / "local_dir").read_text().strip())
    assert not local_dir.exists()


def test_a_fill_only_pilot_starts_only_jobs_that_take_all_its_cores(tmp_path: Path) -> None:
    from campus_factory.classads import matches, parse_ad

    proc = run(script(tmp_path, cpus=4, fill_only=True), tmp_path / "out", {"SLURM_CPUS_ON_NODE": "4"})
    assert proc.returncode == 0, proc.stderr
    clause = "(TARGET.RequestCpus >= 4)"  # the cores it asked for, whatever the scheduler granted
    assert config(tmp_path / "out")["START"] == (
        f"$(CF_SITE_START) && (time() < MY.CampusFactoryPilotEnd - 120) && {clause}"
    )
    # the clause, judged by the real ClassAd library as the pilot's partitionable slot with 3 of
    # its (granted) 5 cores free
    slot = parse_ad(f"[TotalSlotCpus = 5; Cpus = 3; Requirements = {clause}]")
    for cpus, ok in ((1, False), (3, False), (4, True)):
        assert matches(parse_ad(f"[RequestCpus = {cpus}]"), slot) is ok
    plain = tmp_path / "plain"  # a fixed-size pilot: no such clause
    plain.mkdir()
    proc = run(script(plain), plain / "out", {})
    assert proc.returncode == 0, proc.stderr
    assert "RequestCpus" not in config(plain / "out")["START"]


def test_term_asks_the_master_to_quit_and_the_pilot_exits_cleanly(tmp_path: Path) -> None:
    path = script(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.Popen(
        ["bash", str(path)],
        env={**env, "CF_TEST_OUT": str(out)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60  # polls: a fraction of a second when idle
    while not (out / "condor_config").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert '"asked_to_leave": 1' in stdout and "leaving (rc=0, asked=1)" in stdout


def test_no_condor_found_fails_with_a_clear_message(tmp_path: Path) -> None:
    path = script(tmp_path, condor_locations=("/nonexistent",))
    proc = run(path, tmp_path / "out", {})
    assert proc.returncode == 71
    assert "no HTCondor found" in proc.stderr


@pytest.mark.parametrize(
    "spec",
    [
        {"start": "true\nSTART = false"},  # a second config line
        {"attributes": {"Bad Name": "1"}},
        {"attributes": {"X": "1 \\"}},  # a line continuation
        {"attributes": {"X": "CF_CONFIG_EOF"}},  # the heredoc delimiter
        {"extra_config": {"A": "1\nDAEMON_LIST = MASTER SCHEDD"}},
        {"token": "not a token; rm -rf /"},
        {"collector": "cm.example.edu:9618; touch /tmp/x"},
        {"scratch": "$(touch /tmp/x)"},
    ],
)
def test_unsafe_values_are_rejected(tmp_path: Path, spec: dict[str, object]) -> None:
    with pytest.raises(UnsafeValueError):
        script(tmp_path, **spec)


def test_the_config_directory_is_private_but_the_execute_dir_reachable(tmp_path: Path) -> None:
    proc = run(script(tmp_path), tmp_path / "out", {})
    assert proc.returncode == 0
    listing = (tmp_path / "out" / "tokens.ls").read_text()
    assert "campus-factory" in listing
    assert stat.S_IMODE((tmp_path / "scratch").stat().st_mode) & 0o700
