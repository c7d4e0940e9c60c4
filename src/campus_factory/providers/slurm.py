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
from collections.abc import Mapping, Sequence
from typing import ClassVar

from ..errors import CommandError
from ._batch import BatchProvider
from .base import CancelResult, JobState, JobStatus, Submission, translate_state

__all__ = ["SLURM_STATES", "SlurmProvider", "parse_sacct", "parse_squeue"]

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

_SQUEUE_FORMAT = "%i|%T|%K|%r|%j"
_JOB_ID = re.compile(r"[0-9]{1,18}(?:_[0-9]{1,9})?")
_KILL_ERROR = re.compile(r"Kill job error on job id (\S+?):")


def _state(native: str) -> tuple[str, JobState]:
    word = native.split()[0] if native.strip() else native  # "CANCELLED by 0" -> CANCELLED
    return word, translate_state(word, SLURM_STATES, "slurm")


def _index(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_squeue(stdout: str) -> list[JobStatus]:
    """Parse ``squeue -h -r -t all -o '%i|%T|%K|%r|%j'``; a line that is not a job raises
    ValueError (the whole listing is unreadable: a failed read, not an empty queue)."""
    out = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", 4)
        if len(parts) != 5:  # e.g. "slurm_load_jobs error: Socket timed out", printed with exit 0
            raise ValueError(f"squeue printed a line that is not a job: {line[:200]!r}")
        job_id, native, index, reason, name = (p.strip() for p in parts)
        word, state = _state(native)
        out.append(
            JobStatus(
                job_id=job_id,
                state=state,
                native_state=word,
                tag=name,
                array_index=_index(index),
                reason="" if reason in ("None", "(null)") else reason,
            )
        )
    return out


def parse_sacct(stdout: str) -> list[JobStatus]:
    """Parse ``sacct -X -n -P -o JobID,State,ExitCode,JobName`` (also with ``-c``)."""
    out = []
    for line in stdout.splitlines():
        parts = line.split("|", 3)
        if len(parts) != 4 or not parts[0].strip():
            continue
        job_id, native, exit_code, name = (p.strip() for p in parts)
        word, state = _state(native)
        code: int | None = None
        if ":" in exit_code:
            rc, sig = exit_code.split(":", 1)
            if rc.isdigit() and sig.isdigit():
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
        return [self.command("squeue"), "--me", "-h", "-r", "-t", "all", "-o", _SQUEUE_FORMAT]

    def parse_queue(self, stdout: str) -> list[JobStatus]:
        return parse_squeue(stdout)

    def accounting_argvs(self, job_ids: Sequence[str]) -> list[list[str]]:
        ids = ",".join(job_ids)
        fields = ["-X", "-n", "-P", "-o", "JobID,State,ExitCode,JobName", "-j", ids]
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
        return [[self.command("scancel"), *job_ids]]  # plain; graceful cancels: see _cancel

    async def _left_out(self, options: Sequence[str], job_ids: Sequence[str]) -> set[str]:
        """Run ``scancel OPTIONS ids``; the ids it did not act on (all of them when it failed)."""
        try:
            result = await self._run([self.command("scancel"), *options, *job_ids])
        except CommandError:
            return set(job_ids)
        if result.ok:
            return set()
        named = set(_KILL_ERROR.findall(result.stderr))
        return named & set(job_ids) if named else set(job_ids)

    async def _cancel(self, job_ids: Sequence[str], graceful: bool) -> list[CancelResult]:
        if not graceful:
            return await super()._cancel(job_ids, graceful)
        not_pending = await self._left_out(["--state=PENDING"], job_ids)
        not_running = await self._left_out(["--batch", "--signal=TERM", "--state=RUNNING"], job_ids)
        rest = [j for j in job_ids if j in not_pending and j in not_running]
        done = [CancelResult(j, True) for j in job_ids if j not in rest]
        return done + (await super()._cancel(rest, False) if rest else [])
