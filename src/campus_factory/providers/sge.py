"""Grid Engine (Son of Grid Engine, Univa/Altair GE, OGS): pilots as ``qsub`` jobs, one array each.

Verified against Son of Grid Engine 8.1.9 (Debian): ``qsub -terse`` reads the script from stdin
and prints ``7`` or, for arrays, ``7.1-3:1``; array tasks are numbered from 1 (``SGE_TASK_ID``)
and named ``7.1``, ``7.2``... here (``array_index`` stays the 0-based position in the submission);
``qstat -xml -g d`` lists this user's jobs, one ``job_list`` per task; a finished job leaves
``qstat`` at once, so jobs missing from it are looked up with ``qacct -j <job>`` (one call per
job, which covers all its tasks; the accounting file is written a few seconds after the end).
In ``qacct``, ``failed 0`` with ``exit_status 0`` is COMPLETED; ``failed 100`` with an exit
status of 137/143 is a ``qdel`` of a running job (CANCELLED); ``failed 37`` is the h_rt limit
(COMPLETED: the pilot lived its walltime); anything else is FAILED. A job deleted before it
started leaves no accounting record: it becomes GONE. ``qacct`` reads the whole accounting file,
which can be slow on a large site: each job is looked up once, and ``accounting = "none"`` turns
the lookups off.

SGE has no user command that signals a job, so every cancel is a ``qdel`` (SIGKILL), and no
QOS. Memory is requested only when ``batch.sge_memory_complex`` names the site's complex; GPUs
have no standard request (use ``batch.extra_directives``).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

from ..config import PilotOptions, SiteConfig
from ..errors import ConfigError
from ..pilot.payload import GlideinBuilder
from ..transport.executor import Executor
from ._batch import BatchProvider
from .base import JobState, JobStatus, Submission, translate_state

_JOB_ID = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,9})?")  # the job ids this backend prints (matched in full)

log = logging.getLogger(__name__)

__all__ = ["MAX_TASKS", "SGE_FAILED_STATES", "SGE_STATES", "SgeProvider", "parse_qacct", "parse_qstat_xml", "sge_key"]


def sge_key(native: str) -> str:
    """SGE state letters are case-sensitive (r running, R restarted; s/S, t/T): upper-case
    letters are written ``<X>`` so that the case-insensitive table lookup keeps them apart."""
    return "".join(f"<{c}>" if c.isupper() else c for c in native.strip())


def _table(states: Mapping[str, JobState]) -> dict[str, JobState]:
    return {sge_key(k).upper(): v for k, v in states.items()}


#: the state strings qstat(1) documents, as qstat prints them
SGE_STATES: dict[str, JobState] = _table(
    {
        **dict.fromkeys(("qw", "hqw", "hRwq", "hRqw", "Rq", "Rqw"), JobState.PENDING),
        # error states wait for an admin (qmod -cj); they never run by themselves
        **dict.fromkeys(("Eqw", "Ehqw", "EhRqw", "ERqw"), JobState.PENDING),
        **dict.fromkeys(("r", "t", "Rr", "Rt", "hr", "ht"), JobState.RUNNING),
        **dict.fromkeys(("s", "ts", "S", "tS", "T", "tT", "Rs", "Rts", "RS", "RtS", "RT", "RtT"), JobState.RUNNING),
        **dict.fromkeys(("dr", "dt", "dRr", "dRt", "ds", "dS", "dT", "dRs", "dRS", "dRT"), JobState.CANCELLED),
        **dict.fromkeys(("dqw", "dhqw", "dEqw"), JobState.CANCELLED),
    }
)

#: qacct's ``failed`` code -> state (None: decided by exit_status; other codes: FAILED)
SGE_FAILED_STATES: dict[int, JobState | None] = {
    0: None,
    37: JobState.COMPLETED,  # qmaster enforced h_rt limit
    100: JobState.CANCELLED,  # "assumedly after job": ended by a signal (qdel), see _accounted
}

_RANGE = re.compile(r"([0-9]{1,9})(?:-([0-9]{1,9})(?::([0-9]{1,9}))?)?")
#: tasks of one job the factory expands: its own arrays are far smaller (one per submission); a
#: job listing more (``1-2000000000:1``) is someone else's and is skipped, never expanded
MAX_TASKS = 100_000


def _ranges(text: str) -> list[range]:
    """``1-10:2``, ``3``, ``1,4-6:1`` -> ranges (not expanded); ValueError when not a task range."""
    out = []
    for part in text.split(",")[:1000]:
        m = _RANGE.fullmatch(part.strip())
        if m is None or int(m.group(3) or 1) < 1:
            raise ValueError(f"not an SGE task range: {text[:200]!r}")
        first = int(m.group(1))
        out.append(range(first, int(m.group(2) or first) + 1, int(m.group(3) or 1)))
    return out


def _task_ids(text: str, limit: int = MAX_TASKS) -> Iterator[int]:
    """The task numbers of a range text; ValueError when there are more than ``limit``."""
    ranges = _ranges(text)
    count = sum(len(r) for r in ranges)
    if count > limit:
        raise ValueError(f"SGE task range {text[:200]!r} holds {count} tasks (at most {limit})")
    for r in ranges:
        yield from r


def parse_qstat_xml(stdout: str) -> list[JobStatus]:
    """Parse ``qstat -xml`` (with or without ``-g d``): every task of every job."""
    if not stdout.strip():
        return []
    try:
        root = ET.fromstring(stdout)  # noqa: S314 - the site's own qstat, no entities expanded
    except ET.ParseError as exc:
        raise ValueError(f"qstat -xml printed invalid XML: {exc}") from exc
    out = []
    for job in root.iter("job_list"):
        number = (job.findtext("JB_job_number") or "").strip()
        if not number:
            continue
        native = (job.findtext("state") or "").strip()
        state = translate_state(sge_key(native), SGE_STATES, "sge")
        reason = "error state: an admin must clear it (qmod -cj)" if "E" in native else ""
        tag = (job.findtext("JB_name") or "").strip()
        tasks = (job.findtext("tasks") or "").strip()
        if not tasks:
            out.append(JobStatus(number, state, native, tag, None, None, reason))
            continue
        try:
            ids = list(_task_ids(tasks))
        except ValueError as exc:  # not one of ours: our arrays are one submission each
            log.warning("sge: skipping job %s of qstat: %s", number[:20], exc)
            continue
        out.extend(JobStatus(f"{number}.{task}", state, native, tag, task - 1, None, reason) for task in ids)
    return out


def _small_int(text: str) -> int | None:
    """The leading number of a qacct value (``100 : assumedly after job``), None when there is none."""
    m = re.match(r"\s*(-?[0-9]{1,9})\b", text)
    return int(m.group(1)) if m else None


def _accounted(record: Mapping[str, str]) -> JobStatus | None:
    number = record.get("jobnumber", "").strip()
    if not re.fullmatch(r"[0-9]{1,18}", number):
        return None
    task = record.get("taskid", "undefined").strip()
    task = task if re.fullmatch(r"[0-9]{1,9}", task) else "undefined"
    failed_text = record.get("failed", "0").strip()
    failed = _small_int(failed_text)
    failed = -1 if failed is None else failed  # "failed" with no value, or not a number: a failure
    code = _small_int(record.get("exit_status", ""))
    state = SGE_FAILED_STATES.get(failed, JobState.FAILED)
    if state is None:
        state = JobState.COMPLETED if code == 0 else JobState.FAILED
    elif state is JobState.CANCELLED and code not in (137, 143):
        state = JobState.FAILED
    reason = "" if failed == 0 else f"failed {failed_text[:200]}"
    job_id, index = (f"{number}.{task}", int(task) - 1) if task.isdigit() else (number, None)
    tag = record.get("jobname", "").strip()
    return JobStatus(job_id, state, f"failed={failed}", tag, index, code, reason, True)


def parse_qacct(stdout: str) -> list[JobStatus]:
    """Parse ``qacct -j`` (blocks of ``key value`` lines between ``=====`` rules); a job
    accounted twice (rescheduled) keeps its last record."""
    records: list[dict[str, str]] = []
    for line in stdout.splitlines():
        if line.startswith("=" * 10):
            records.append({})
        elif line.strip() and records:
            key, _, value = line.partition(" ")
            records[-1][key.strip()] = value.strip()
    found: dict[str, JobStatus] = {}
    for record in records:
        status = _accounted(record)
        if status is not None:
            found[status.job_id] = status
    return list(found.values())


class SgeProvider(BatchProvider):
    """Pilots as Grid Engine batch jobs."""

    backend = "sge"
    directive_prefix = "#$"
    array_index_var = "SGE_TASK_ID"
    array_base = 1
    state_table: ClassVar[Mapping[str, JobState]] = SGE_STATES
    job_id_grammar = _JOB_ID
    accounting_merge = True
    index_outside_arrays = False
    accounting_array_separator = "."

    def __init__(
        self,
        site: SiteConfig,
        pilot: PilotOptions,
        executor: Executor,
        factory_name: str,
        glidein: GlideinBuilder | None = None,
    ) -> None:
        super().__init__(site, pilot, executor, factory_name, glidein)
        if site.slot.gpus:
            raise ConfigError(
                f"sites[{site.name}].slot.gpus: SGE has no standard GPU request; "
                "set gpus = 0 and name the site's complex in batch.extra_directives"
            )

    def job_directives(self, submission: Submission) -> list[str]:
        batch = self.config.batch
        first = submission.pilots[0]
        n = len(submission.pilots)
        out = [
            f"-N {self.word(submission.tag, 'job name')}",
            f"-o {self.word(batch.work_dir, 'work_dir')}/",
            "-j y",
            "-S /bin/bash",
            f"-l h_rt={self.hhmmss(first.walltime_s)}",
        ]
        if first.cpus > 1:
            out.append(f"-pe {self.word(batch.sge_parallel_environment, 'parallel environment')} {first.cpus}")
        if batch.sge_memory_complex:
            per_slot = -(-first.memory_mb // first.cpus)
            out.append(f"-l {self.word(batch.sge_memory_complex, 'memory complex')}={per_slot}M")
        if n > 1:
            out.append(f"-t 1-{n}")
        return out

    def submit_argv(self, submission: Submission) -> list[str]:
        return [self.command("qsub"), "-terse"]

    def parse_submit(self, stdout: str, submission: Submission) -> list[str]:
        answer = stdout.strip().splitlines()[-1].strip()  # "7" or "7.1-3:1"
        number, _, tasks = answer.partition(".")
        if not number.isdigit():
            raise ValueError(f"not an SGE job id: {answer!r}")
        if not tasks:
            return [number]
        return [f"{number}.{t}" for t in _task_ids(tasks, limit=len(submission.pilots))]

    def queue_argv(self) -> list[str]:
        return [self.command("qstat"), "-xml", "-g", "d"]

    def parse_queue(self, stdout: str) -> list[JobStatus]:
        return parse_qstat_xml(stdout)

    def accounting_argv(self, key: str) -> list[str]:
        return [self.command("qacct"), "-j", key]

    def parse_accounting(self, stdout: str) -> list[JobStatus]:
        return parse_qacct(stdout)

    def cancel_argvs(self, job_ids: Sequence[str], graceful: bool) -> list[list[str]]:
        return [[self.command("qdel"), ",".join(job_ids)]]
