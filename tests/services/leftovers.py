"""What the test suite left running: `make test` records a baseline before pytest and checks after it.

    python tests/services/leftovers.py baseline FILE
    CF_TEST_RUN=<id> python -m pytest ...
    python tests/services/leftovers.py check FILE [--run <id>] [--grace SECONDS]

A process counts as the suite's when it was not running at the baseline (same pid *and* start
time) and either runs one of the services' programs (:data:`PROGRAMS`: Slurm, SGE, munged, sshd,
PostgreSQL, HTCondor, Chromium, mimic's twistd, moto's server, a pilot's ``sleep infinity``) or
carries ``CF_TEST_RUN=<id>`` in its environment (every process pytest starts inherits it, also
daemons that left its session). Processes that were already there, such as the host's own sshd,
are never reported. ``check`` polls up to ``--grace`` seconds (daemons take a moment to exit),
then prints each process left with why it counts, and exits 1.

A process found by its program alone, without this run's marker, may belong to something else
started beside the suite on a shared machine: ``--names fail`` (the default under CI=true, a
fresh machine) fails on those too, ``--names warn`` (the default elsewhere) only lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROGRAMS", "Proc", "leftovers", "main", "snapshot", "why_ours"]

#: executables (``/proc/<pid>/comm``, at most 15 characters) the services run
PROGRAMS = frozenset(
    {
        "slurmctld",
        "slurmd",
        "slurmstepd",
        "slurmdbd",
        "slurmscriptd",
        "sge_qmaster",
        "sge_execd",
        "sge_shepherd",
        "munged",
        "sshd",
        "postgres",
        "postmaster",
        "twistd",
        "chromium",
        "chrome",
        "chrome_crashpad",
        "headless_shell",
    }
)
PREFIXES = ("condor_",)  # condor_master, condor_schedd, condor_startd, condor_procd, ...
#: command lines that give a process away when its executable does not (python, node, sleep)
MARKERS = ("moto_server", "playwright")


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat field 22): pid + start name one process
    comm: str
    cmdline: str
    uid: int
    env_run: str | None  # the value of CF_TEST_RUN in its environment, if any

    @property
    def key(self) -> str:
        return f"{self.pid}:{self.start}"


def _read(pid: str) -> Proc | None:
    base = Path("/proc") / pid
    try:
        stat = (base / "stat").read_text()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        start = int(stat.rsplit(")", 1)[1].split()[19])
        cmdline = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        uid = (base / "status").stat().st_uid
    except (OSError, ValueError, IndexError):
        return None
    env_run = None
    try:
        for item in (base / "environ").read_bytes().split(b"\0"):
            if item.startswith(b"CF_TEST_RUN="):
                env_run = item.split(b"=", 1)[1].decode(errors="replace")
    except OSError:
        pass  # another user's process, when not root: judged by its name only
    return Proc(int(pid), start, comm, cmdline, uid, env_run)


def snapshot() -> list[Proc]:
    """Every process but this one and its parents."""
    me = {os.getpid(), os.getppid()}
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in me:
            proc = _read(entry)
            if proc is not None and proc.cmdline:  # kernel threads have no command line
                out.append(proc)
    return out


def why_ours(proc: Proc, run: str | None) -> str | None:
    """Why ``proc`` looks like something the suite started, or None."""
    if run and proc.env_run == run:
        return "started by this test run (CF_TEST_RUN in its environment)"
    if proc.comm in PROGRAMS or proc.comm.startswith(PREFIXES):
        return f"a service program ({proc.comm})"
    if proc.comm == "sleep" and proc.cmdline.split()[1:] == ["infinity"]:
        return "a pilot's payload (sleep infinity)"
    hit = next((m for m in MARKERS if m in proc.cmdline), None)
    if hit and proc.comm not in ("bash", "sh", "make", "flock", "timeout"):
        return f"its command line names {hit}"
    return None


def leftovers(baseline: set[str], run: str | None) -> list[tuple[Proc, str]]:
    found = []
    for proc in snapshot():
        if proc.key in baseline:
            continue
        why = why_ours(proc, run)
        if why:
            found.append((proc, why))
    return found


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["baseline", "check"])
    ap.add_argument("file", type=Path)
    ap.add_argument("--run", default=os.environ.get("CF_TEST_RUN"), help="the run id given to pytest as CF_TEST_RUN")
    ap.add_argument("--grace", type=float, default=30.0, help="seconds to wait for processes that are exiting")
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    ap.add_argument(
        "--names",
        choices=["fail", "warn"],
        default="fail" if in_ci else "warn",
        help="found by program only, without the run's marker (default: fail under CI=true, else warn)",
    )
    args = ap.parse_args(argv)
    if args.action == "baseline":
        args.file.write_text(json.dumps(sorted(p.key for p in snapshot())))
        return 0
    baseline = set(json.loads(args.file.read_text()))

    def failing(found: list[tuple[Proc, str]]) -> list[tuple[Proc, str]]:
        return [f for f in found if args.names == "fail" or (args.run and f[0].env_run == args.run)]

    deadline = time.monotonic() + args.grace
    found = leftovers(baseline, args.run)
    while failing(found) and time.monotonic() < deadline:
        time.sleep(1)
        found = leftovers(baseline, args.run)
    bad = failing(found)
    others = [f for f in found if f not in bad]
    if others:
        print(
            f"leftovers: {len(others)} process(es) with a service's name but without this run's marker", file=sys.stderr
        )
        print("(started beside the suite? not counted; --names fail counts them):", file=sys.stderr)
        for proc, why in sorted(others, key=lambda f: f[0].pid):
            print(f"  pid {proc.pid} user {_user(proc.uid)}: {why}: {proc.cmdline[:160]}", file=sys.stderr)
    if not bad:
        print("leftovers: no process of the test suite is left running")
        return 0
    print(f"leftovers: {len(bad)} process(es) the test suite started are still running", file=sys.stderr)
    print("(not there when the suite began; each service's fixture must stop what it started):", file=sys.stderr)
    for proc, why in sorted(bad, key=lambda f: f[0].pid):
        print(f"  pid {proc.pid} user {_user(proc.uid)}: {why}: {proc.cmdline[:160]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
