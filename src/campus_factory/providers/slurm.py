"""Slurm: pilots as batch jobs (``sbatch``), one job array per submission.

Verified against Slurm 22.05 (Debian): ``sbatch --parsable`` prints ``ID`` or ``ID;cluster``;
``squeue -r`` lists array elements as ``ID_INDEX``; ``sacct`` needs slurmdbd, and without it
``sacct -c`` reads the jobcomp file, which cannot tell array elements apart (an element found
nowhere else is then reported GONE). ``scancel --batch --signal=TERM`` reaches only the batch
shell, which the pilot script traps to leave cleanly; on a pending job it does not fail but
retries "Job can not be altered now" until the command times out. A graceful cancel is therefore
two filtered commands: ``scancel --state=PENDING`` (plain: pending pilots are removed) then
``scancel --batch --signal=TERM --state=RUNNING``. Each prints ``Kill job error on job id X:
Invalid job id specified`` (exit 1) for the jobs its filter leaves out; a job left out by both
(suspended, completing, already gone) gets a plain ``scancel``, as does every job when a command
fails outright. Job ids are ``N`` or ``N_I`` (array elements), nothing else. Every command is
found under ``batch.bin_dir`` when it is set.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import CommandError
from ._batch import BatchProvider
from .base import CancelResult, JobState, JobStatus, Observation, Submission, SubmittedPilot, translate_state

__all__ = [
    "FULL_LISTING_EVERY",
    "SLURM_STATES",
    "SlurmProvider",
    "compress_ids",
    "expand_ids",
    "parse_sacct",
    "parse_squeue",
]

SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "TIMEOUT": JobState.COMPLETED,
    "SPECIAL_EXIT": JobState.COMPLETED,
    "CANCELLED": JobState.CANCELLED,
    "PREEMPTED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "DEADLINE": JobState.CANCELLED,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
}

_SQUEUE_FORMAT = "%i|%T|%K|%r|%S|%e|%j"
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_NO_TIME = frozenset({"N/A", "NONE", "UNKNOWN", ""})
_JOB_ID = re.compile(r"[0-9]{1,18}(?:_[0-9]{1,9})?")
_KILL_ERROR = re.compile(r"Kill job error on job id (\S+?):")
_ELEMENTS = re.compile(r"([0-9]{1,18})_\[([0-9,-]{1,10000})\]")
#: every this many observes the whole ``--me`` listing is read (strangers another process left)
FULL_LISTING_EVERY = 10
#: cancelled job ids remembered until they are seen ended (at most this many)
_REMEMBER = 100_000


def compress_ids(job_ids: Sequence[str]) -> list[str]:
    """Job ids with the elements of each array as one range expression (``7_[0-99,120]``), so
    that scancel sends one request per array instead of one per element."""
    plain: list[str] = []
    arrays: dict[str, list[int]] = {}
    for j in dict.fromkeys(job_ids):
        base, sep, index = j.partition("_")
        if sep and index.isdigit():
            arrays.setdefault(base, []).append(int(index))
        else:
            plain.append(j)
    out = list(plain)
    for base, indices in arrays.items():
        indices.sort()
        if len(indices) == 1:
            out.append(f"{base}_{indices[0]}")
            continue
        runs: list[str] = []
        lo = prev = indices[0]
        for i in [*indices[1:], None]:
            if i is not None and i == prev + 1:
                prev = i
                continue
            runs.append(f"{lo}-{prev}" if prev > lo else str(lo))
            if i is not None:
                lo = prev = i
        out.append(f"{base}_[{','.join(runs)}]")
    return out


def expand_ids(named: str) -> list[str]:
    """The job ids a scancel message names: ``7_3``, ``7`` or a range expression ``7_[0-2,5]``."""
    m = _ELEMENTS.fullmatch(named)
    if m is None:
        return [named]
    out = []
    for part in m.group(2).split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out += [f"{m.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def _state(native: str) -> tuple[str, JobState]:
    word = native.split()[0] if native.strip() else native  # "CANCELLED by 0" -> CANCELLED
    return word, translate_state(word, SLURM_STATES, "slurm")


def _index(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None


def slurm_time(text: str) -> float | None:
    """A Slurm timestamp (``2026-12-03T06:50:01``, the cluster's local time) as UNIX seconds;
    None for ``N/A``, ``Unknown``, ``None`` or anything else."""
    text = text.strip()
    if not _TIME.fullmatch(text):
        return None
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _times(state: JobState, start: str, end: str) -> tuple[float | None, float | None]:
    """Start and end as facts: a pending job's start, a live job's end are only forecasts."""
    started = slurm_time(start) if state is not JobState.PENDING else None
    ended = slurm_time(end) if state.finished else None
    return started, ended


def parse_squeue(stdout: str) -> list[JobStatus]:
    """Parse ``squeue -h -r -t all -o '%i|%T|%K|%r|%S|%e|%j'`` (also the older ``%i|%T|%K|%r|%j``);
    a line that is not a job raises ValueError (the whole listing is unreadable: a failed read,
    not an empty queue)."""
    out = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", 6)
        if len(parts) == 7 and all(_TIME.fullmatch(p.strip()) or p.strip().upper() in _NO_TIME for p in parts[4:6]):
            job_id, native, index, reason, start, end, name = (p.strip() for p in parts)
        else:
            parts = line.split("|", 4)
            if len(parts) != 5:  # e.g. "slurm_load_jobs error: Socket timed out", printed with exit 0
                raise ValueError(f"squeue printed a line that is not a job: {line[:200]!r}")
            job_id, native, index, reason, name = (p.strip() for p in parts)
            start = end = ""
        word, state = _state(native)
        started, ended = _times(state, start, end)
        out.append(
            JobStatus(
                job_id=job_id,
                state=state,
                native_state=word,
                tag=name,
                array_index=_index(index),
                reason="" if reason in ("None", "(null)") else reason,
                started_at=started,
                ended_at=ended,
            )
        )
    return out


def parse_sacct(stdout: str) -> list[JobStatus]:
    """Parse ``sacct -X -n -P -o JobID,State,ExitCode,Start,End,JobName`` (also with ``-c``; also
    the older ``JobID,State,ExitCode,JobName``)."""
    out = []
    for line in stdout.splitlines():
        parts = line.split("|", 5)
        if len(parts) == 6 and all(_TIME.fullmatch(p.strip()) or p.strip().upper() in _NO_TIME for p in parts[3:5]):
            job_id, native, exit_code, start, end, name = (p.strip() for p in parts)
        else:
            parts = line.split("|", 3)
            if len(parts) != 4:
                continue
            job_id, native, exit_code, name = (p.strip() for p in parts)
            start = end = ""
        if not job_id:
            continue
        word, state = _state(native)
        started, ended = _times(state, start, end)
        code: int | None = None
        if ":" in exit_code:
            rc, sig = exit_code.split(":", 1)
            if re.fullmatch(r"[0-9]{1,9}", rc) and re.fullmatch(r"[0-9]{1,9}", sig):
                code = int(rc) if int(sig) == 0 else 128 + int(sig)
        index = _index(job_id.split("_", 1)[1]) if "_" in job_id else None
        out.append(
            JobStatus(
                job_id=job_id,
                state=state,
                native_state=word,
                tag=name,
                array_index=index,
                exit_code=code,
                reason=native if native != word else "",
                from_accounting=True,
                started_at=started,
                ended_at=ended,
            )
        )
    return out


class SlurmProvider(BatchProvider):
    """Pilots as Slurm batch jobs."""

    backend = "slurm"
    directive_prefix = "#SBATCH"
    array_index_var = "SLURM_ARRAY_TASK_ID"
    array_base = 0
    state_table = SLURM_STATES
    job_id_grammar = _JOB_ID
    queue_directives: ClassVar[Mapping[str, str]] = {
        "partition": "--partition={}",
        "account": "--account={}",
        "qos": "--qos={}",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._our_tags: set[str] = set()  # tags of our submissions the queue lists (or just made)
        self._names: list[str] | None = None  # the --name filter of the next queue listing
        self._observes = 0
        self._cancelled: dict[str, None] = {}  # job ids scancel accepted, until observed ended

    def job_directives(self, submission: Submission) -> list[str]:
        first = submission.pilots[0]
        batch = self.config.batch
        n = len(submission.pilots)
        log_name = f"{submission.tag}-%A_%a.out" if n > 1 else f"{submission.tag}-%j.out"
        out = [
            f"--job-name={submission.tag}",
            f"--output={batch.work_dir}/{log_name}",
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={first.cpus}",
            f"--mem={first.memory_mb}",
            f"--time={self.walltime_minutes(first.walltime_s)}",
        ]
        if n > 1:
            out.append(f"--array=0-{n - 1}")
        if first.gpus:
            out.append(f"--gres=gpu:{first.gpus}")
        margin = int(min(batch.term_margin, first.walltime_s / 2, 65535))
        if margin > 0:
            out.append(f"--signal=B:TERM@{margin}")
        return out

    def submit_argv(self, submission: Submission) -> list[str]:
        return [self.command("sbatch"), "--parsable"]

    def parse_submit(self, stdout: str, submission: Submission) -> list[str]:
        first_line = stdout.strip().splitlines()[0]
        job = first_line.split(";", 1)[0].strip()
        if not job.isdigit():
            raise ValueError(f"not a job id: {job!r}")
        if len(submission.pilots) == 1:
            return [job]
        return [f"{job}_{i}" for i in range(len(submission.pilots))]

    def queue_argv(self) -> list[str]:
        argv = [self.command("squeue"), "--me", "-h", "-r", "-t", "all", "-o", _SQUEUE_FORMAT]
        return [*argv, f"--name={','.join(self._names)}"] if self._names else argv

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        self._our_tags.add(submission.tag)  # before sbatch: a submission that times out may be there
        return await super().submit(submission)

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        """Only our jobs are listed (``--name`` = the tags of the submissions this process made or
        saw), except on the first observe and every :data:`FULL_LISTING_EVERY` th, which read the
        whole ``--me`` listing: jobs left by a crash are adopted on the first cycle, and strangers
        nobody here knows are found within that many cycles."""
        self._observes += 1
        tags = set(self._our_tags)
        full = (self._observes - 1) % FULL_LISTING_EVERY == 0
        if not full and not tags and not job_ids:
            return Observation(statuses={})
        self._names = None if full or not tags else sorted(tags)
        try:
            obs = await super().observe(job_ids, tag_prefix)
        finally:
            self._names = None
        # the tags worth asking for next time: those the queue still lists, and any submitted since
        self._our_tags = {st.tag for st in obs.tagged} | (self._our_tags - tags)
        return self._cancelled_not_gone(obs)

    def _cancelled_not_gone(self, obs: Observation) -> Observation:
        """A pending array element that scancel removed leaves no record: squeue lists it no
        more and accounting never had it. One we cancelled is reported CANCELLED, not GONE."""
        statuses = dict(obs.statuses)
        for job_id, st in obs.statuses.items():
            if job_id not in self._cancelled:
                continue
            if st.state is JobState.GONE:
                statuses[job_id] = JobStatus(
                    job_id,
                    JobState.CANCELLED,
                    native_state="CANCELLED",
                    reason="removed by scancel (Slurm keeps no record of a pending array element)",
                )
            if st.state.finished:
                del self._cancelled[job_id]
        return Observation(statuses=statuses, tagged=obs.tagged)

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        done = await super().cancel(job_ids, graceful=graceful)
        self._cancelled.update((r.job_id, None) for r in done if r.ok)
        while len(self._cancelled) > _REMEMBER:  # bounded: the oldest are forgotten
            del self._cancelled[next(iter(self._cancelled))]
        return done

    def parse_queue(self, stdout: str) -> list[JobStatus]:
        return parse_squeue(stdout)

    def accounting_argvs(self, job_ids: Sequence[str]) -> list[list[str]]:
        ids = ",".join(job_ids)
        fields = ["-X", "-n", "-P", "-o", "JobID,State,ExitCode,Start,End,JobName", "-j", ids]
        mode = self.config.batch.accounting
        argvs = []
        if mode in ("auto", "sacct"):
            argvs.append([self.command("sacct"), *fields])
        if mode in ("auto", "jobcomp"):
            argvs.append([self.command("sacct"), "-c", *fields])
        return argvs

    def parse_accounting(self, stdout: str) -> list[JobStatus]:
        return parse_sacct(stdout)

    def cancel_argvs(self, job_ids: Sequence[str], graceful: bool) -> list[list[str]]:
        # plain; graceful cancels: see _cancel. One range expression per array (compress_ids).
        return [[self.command("scancel"), *compress_ids(job_ids)]]

    async def _left_out(self, options: Sequence[str], job_ids: Sequence[str]) -> set[str]:
        """Run ``scancel OPTIONS ids``; the ids it did not act on (all of them when it failed)."""
        try:
            result = await self._run([self.command("scancel"), *options, *compress_ids(job_ids)])
        except CommandError:
            return set(job_ids)
        if result.ok:
            return set()
        ours = set(job_ids)
        named: set[str] = set()
        for text in _KILL_ERROR.findall(result.stderr):
            for j in expand_ids(text):
                # a whole array named by its id: every element of it we asked about
                named.update([j] if j in ours else [k for k in ours if k.partition("_")[0] == j])
        return named & ours if named else ours

    async def _cancel(self, job_ids: Sequence[str], graceful: bool) -> list[CancelResult]:
        if not graceful:
            return await super()._cancel(job_ids, graceful)
        not_pending = await self._left_out(["--state=PENDING"], job_ids)
        not_running = await self._left_out(["--batch", "--signal=TERM", "--state=RUNNING"], job_ids)
        rest = [j for j in job_ids if j in not_pending and j in not_running]
        done = [CancelResult(j, True) for j in job_ids if j not in rest]
        return done + (await super()._cancel(rest, False) if rest else [])
