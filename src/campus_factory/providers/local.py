"""Pilots as processes on this host: for a small site, and for tests.

Each pilot runs the same script a batch site would get, detached in its own session, with its
output in ``batch.work_dir``. Each pilot has its own copy of the script (mode 0700: a glidein's
holds its IDTOKEN), removed when the pilot ends, by its wrapper, or by the provider when it
kills the pilot or finds it ended. A state file per pilot (``.cf-local/<job>.json``: tag, index, pid
and the process start time, so a reused pid is never mistaken for the pilot) lets a restarted
factory find its pilots again; the wrapper writes the exit status beside it. There is no queue:
a pilot is RUNNING from its start, and ``max_pilots`` is the only limit that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import PilotOptions, SiteConfig
from ..errors import SubmitError
from ..pilot.payload import GlideinBuilder, submission_script
from .base import CancelResult, JobState, JobStatus, Observation, Submission, SubmittedPilot

__all__ = ["LocalProvider"]

# A constant wrapper: the script and the status file arrive as positional arguments. It passes
# a TERM on to the pilot script (which traps it to leave cleanly), removes the script when the
# pilot ends (it holds the pilot's IDTOKEN) and records its exit status.
_WRAPPER = (
    "trap 't=1; kill -TERM \"${c:-}\" 2>/dev/null' TERM; "
    'bash "$0" & c=$!; r=0; [ -n "${t:-}" ] && kill -TERM "$c"; '
    'while kill -0 "$c" 2>/dev/null; do wait "$c"; r=$?; done; '
    'rm -f "$0"; '
    'echo "$r" > "$1.tmp" && mv "$1.tmp" "$1"'
)


#: a pilot asked to leave is first given this long from its start to install its TERM traps (a
#: TERM before them would kill it without its exit status)
_SETTLE_S = 1.0


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return fields[19]


class LocalProvider:
    """Starts pilots as local processes."""

    def __init__(
        self,
        site: SiteConfig,
        pilot: PilotOptions,
        factory_name: str,
        glidein: GlideinBuilder | None = None,
    ) -> None:
        self.site = site.name
        self.config = site
        self.pilot = pilot
        self.factory_name = factory_name
        self.glidein = glidein
        self.work_dir = Path(site.batch.work_dir)
        self.state_dir = self.work_dir / ".cf-local"
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def _state(self, job_id: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.state_dir / f"{job_id}.json").read_text())
            return data
        except (OSError, ValueError):
            return None

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        script, _ = await submission_script(
            self.config,
            self.pilot,
            self.glidein,
            self.factory_name,
            submission.submission_id,
            submission.pilots,
            [p.pilot_id for p in submission.pilots],
            index_var="CF_LOCAL_INDEX",
            summary_dir=str(self.work_dir),
        )
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SubmitError(f"{self.site}: cannot write the pilot script: {exc}", site=self.site) from exc
        out = []
        for index, req in enumerate(submission.pilots):
            log_path = self.work_dir / f"{submission.tag}-{index}.out"
            env = {**os.environ, **self.config.batch.environment, "CF_LOCAL_INDEX": str(index)}
            job_id = f"{submission.submission_id}-{index}"
            status_path = self.state_dir / f"{job_id}.rc"
            script_path = self._script(job_id)
            try:
                fd = os.open(script_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
                with os.fdopen(fd, "w") as f:
                    f.write(script)
            except OSError as exc:
                raise SubmitError(f"{self.site}: cannot write the pilot script: {exc}", site=self.site) from exc
            try:
                with open(log_path, "ab") as log:
                    child = subprocess.Popen(
                        ["bash", "-c", _WRAPPER, str(script_path), str(status_path)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        start_new_session=True,
                    )
            except OSError as exc:
                raise SubmitError(f"{self.site}: cannot start a pilot: {exc}", site=self.site) from exc
            self._children[child.pid] = child
            state = {
                "tag": submission.tag,
                "index": index if len(submission.pilots) > 1 else None,
                "pilot_id": req.pilot_id,
                "pid": child.pid,
                "start": _start_time(child.pid),
            }
            (self.state_dir / f"{job_id}.json").write_text(json.dumps(state))
            out.append(SubmittedPilot(req.pilot_id, job_id))
        return out

    def _script(self, job_id: str) -> Path:
        return self.state_dir / f"{job_id}.sh"

    def _forget_script(self, job_id: str) -> None:
        """The script of an ended pilot holds its token: gone (the wrapper removes it too)."""
        with contextlib.suppress(OSError):
            self._script(job_id).unlink(missing_ok=True)

    def _status(self, job_id: str, state: dict[str, Any]) -> JobStatus:
        status = self._live_status(job_id, state)
        if status.state is not JobState.RUNNING:
            self._forget_script(job_id)
        return status

    def _live_status(self, job_id: str, state: dict[str, Any]) -> JobStatus:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
        rc_path = self.state_dir / f"{job_id}.rc"
        tag, index = str(state.get("tag", "")), state.get("index")
        if rc_path.exists():
            text = rc_path.read_text().strip()
            rc = int(text) if re.fullmatch(r"-?[0-9]{1,3}", text) else None
            cancelled = (self.state_dir / f"{job_id}.cancelled").exists()
            st = JobState.CANCELLED if cancelled else JobState.COMPLETED if rc == 0 else JobState.FAILED
            return JobStatus(job_id, st, native_state=f"exit {rc}", tag=tag, array_index=index, exit_code=rc)
        pid = int(state.get("pid", 0))
        if pid and _start_time(pid) == state.get("start"):
            return JobStatus(job_id, JobState.RUNNING, native_state="running", tag=tag, array_index=index)
        if (self.state_dir / f"{job_id}.cancelled").exists():
            return JobStatus(job_id, JobState.CANCELLED, native_state="killed", tag=tag, array_index=index)
        return JobStatus(
            job_id,
            JobState.FAILED,
            native_state="vanished",
            tag=tag,
            array_index=index,
            reason="process gone without an exit status",
        )

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        statuses: dict[str, JobStatus] = {}
        tagged: list[JobStatus] = []
        files = sorted(self.state_dir.glob("*.json")) if self.state_dir.exists() else []
        known = {}
        for f in files:
            with contextlib.suppress(OSError, ValueError):
                known[f.stem] = json.loads(f.read_text())
        for job_id in job_ids:
            state = known.get(job_id)
            statuses[job_id] = (
                self._status(job_id, state) if state else JobStatus(job_id, JobState.GONE, reason="no state file")
            )
        for job_id, state in known.items():
            if str(state.get("tag", "")).startswith(tag_prefix):
                tagged.append(self._status(job_id, state))
        return Observation(statuses=statuses, tagged=tagged)

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        out = []
        for job_id in job_ids:
            state = self._state(job_id)
            pid = int(state.get("pid", 0)) if state else 0
            if not state or not pid or _start_time(pid) != state.get("start"):
                self._forget_script(job_id)
                out.append(CancelResult(job_id, True, "not running"))
                continue
            try:
                if graceful:
                    with contextlib.suppress(OSError):
                        age = time.time() - (self.state_dir / f"{job_id}.json").stat().st_mtime
                        if 0 <= age < _SETTLE_S:
                            await asyncio.sleep(_SETTLE_S - age)
                    os.kill(pid, signal.SIGTERM)
                else:
                    (self.state_dir / f"{job_id}.cancelled").touch()
                    os.killpg(pid, signal.SIGKILL)
                    self._forget_script(job_id)
                out.append(CancelResult(job_id, True))
            except ProcessLookupError:
                self._forget_script(job_id)
                out.append(CancelResult(job_id, True, "already gone"))
            except OSError as exc:
                out.append(CancelResult(job_id, False, str(exc)))
        await asyncio.sleep(0)
        return out
