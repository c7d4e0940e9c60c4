"""PBS: pilots as PBS Pro/OpenPBS, Torque, or Slurm-wrapper batch jobs (``qsub``/``qstat``/``qdel``).

Three dialects (``batch.pbs_flavor``), one module:

- ``pbspro`` (PBS Pro, OpenPBS): ``-l select=1:ncpus=N:mem=Mmb``, arrays ``-J 0-N`` with
  ``PBS_ARRAY_INDEX``, ``qstat -f -F json -t`` (text ``qstat -f -t`` with ``json_output = false``),
  finished jobs from the job history, ``qstat -x -f <id>`` (needs ``job_history_enable``).
- ``torque``: ``-l nodes=1:ppn=N``, arrays ``-t 0-N`` with ``PBS_ARRAYID``, ``qstat -f -t``;
  finished jobs stay in ``qstat`` as ``C`` for ``keep_completed``, then ``tracejob`` (server host).
- ``slurm`` (Slurm's wrappers, Debian slurm-wlm-torque): ``qsub`` needs a script file, so the
  script is staged in ``work_dir``; ``-o`` must be on the command line; the wrapper's ``qstat``
  cannot tell array elements apart, so each pilot is its own job; an empty ``qstat`` exits 153;
  ``qstat -f`` shows finished jobs as ``C`` until Slurm's MinJobAge, and has no history.

Job ids are kept without the server suffix (``123``, ``123[4]``) so that ``qsub`` and ``qstat``
answers always match. A graceful cancel sends TERM with ``qsig`` (which the pilot traps), then
falls back to ``qdel``. Finished jobs are refined by their exit status: 0 COMPLETED, 256+TERM/KILL
CANCELLED (``qdel``), PBS Pro's walltime kill (-29) COMPLETED, anything else FAILED.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from ..config import PilotOptions, SiteConfig
from ..pilot.payload import GlideinBuilder
from ..transport.executor import CommandResult, Executor
from ._batch import BatchProvider, load_json
from .base import JobState, JobStatus, Submission, SubmittedPilot, translate_state

_JOB_ID = re.compile(r"[0-9]{1,18}(?:\[[0-9]{0,9}\])?")  # the job ids this backend prints (matched in full)

__all__ = [
    "PBS_EXIT_STATES",
    "PBS_STATES",
    "PbsProProvider",
    "PbsProvider",
    "SlurmPbsProvider",
    "TorqueProvider",
    "parse_qstat_full",
    "parse_qstat_json",
    "parse_tracejob",
    "pbs_provider",
]

PBS_STATES: dict[str, JobState] = {
    "Q": JobState.PENDING,  # queued
    "H": JobState.PENDING,  # held
    "W": JobState.PENDING,  # waiting for its start time
    "T": JobState.PENDING,  # in transit between servers
    "M": JobState.PENDING,  # moved to another server (PBS Pro peer scheduling)
    "R": JobState.RUNNING,
    "E": JobState.RUNNING,  # exiting
    "S": JobState.RUNNING,  # suspended
    "U": JobState.RUNNING,  # PBS Pro: suspended while its workstation is busy
    "B": JobState.RUNNING,  # PBS Pro: array begun (array parents are skipped anyway)
    "C": JobState.COMPLETED,  # Torque / wrappers: completed (refined by the exit status)
    "F": JobState.COMPLETED,  # PBS Pro history: finished (refined by the exit status)
    "X": JobState.COMPLETED,  # PBS Pro: subjob finished (refined by the exit status)
}
#: Slurm's wrappers print "U" for any Slurm state they do not know
SLURM_WRAPPER_STATES: dict[str, JobState] = {k: v for k, v in PBS_STATES.items() if k != "U"}

#: exit status of a finished job -> its state (other values: FAILED)
PBS_EXIT_STATES: dict[int, JobState] = {
    0: JobState.COMPLETED,
    -29: JobState.COMPLETED,  # PBS Pro JOB_EXEC_KILL_WALLTIME: the pilot lived its walltime
    256 + 15: JobState.CANCELLED,  # killed by TERM (qdel)
    256 + 9: JobState.CANCELLED,  # killed by KILL (qdel after kill_delay)
}

_ID = re.compile(r"(\d{1,18})(?:\[(\d{0,9})\])?(?:\.[A-Za-z0-9][A-Za-z0-9.-]{0,252})?")
_ATTR = re.compile(r"^\s+([A-Za-z_][\w.]*) = ?(.*)$")


def _short_id(full: str) -> tuple[str, int | None, bool]:
    """``123[4].server`` -> ("123[4]", 4, False); ``123[].server`` -> ("123[]", None, True)."""
    m = _ID.fullmatch(full.strip())
    if m is None:
        raise ValueError(f"not a PBS job id: {full!r}")
    number, index = m.group(1), m.group(2)
    if index is None:
        return number, None, False
    if index == "":
        return f"{number}[]", None, True
    return f"{number}[{index}]", int(index), False


def _exit_code(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _status(
    full_id: str, attrs: Mapping[str, Any], states: Mapping[str, JobState], accounting: bool
) -> JobStatus | None:
    job_id, index, parent = _short_id(full_id)
    if parent or str(attrs.get("array", "")).lower() == "true":
        return None  # an array's parent: its subjobs are the pilots
    native = str(attrs.get("job_state", "")).strip()
    state = translate_state(native, states, "pbs")
    code = _exit_code(attrs.get("exit_status", attrs.get("Exit_status", "")))
    if state is JobState.COMPLETED and code is not None:
        state = PBS_EXIT_STATES.get(code, JobState.FAILED)
    if index is None:
        index = _exit_code(attrs.get("array_index", attrs.get("job_array_id", "")))
    tag = str(attrs.get("Job_Name", "")).strip()
    if index is not None and tag.endswith(f"-{index}"):
        tag = tag[: -len(f"-{index}")]  # Torque names array subjobs "name-index"
    return JobStatus(
        job_id=job_id,
        state=state,
        native_state=native,
        tag=tag,
        array_index=index,
        exit_code=code,
        reason=str(attrs.get("comment", "")).strip(),
        from_accounting=accounting,
    )


def _full_records(stdout: str) -> Iterator[tuple[str, dict[str, str]]]:
    job: str | None = None
    attrs: dict[str, str] = {}
    last = ""
    for line in stdout.splitlines():
        if line.startswith("Job Id:"):
            if job is not None:
                yield job, attrs
            job, attrs, last = line.split(":", 1)[1].strip(), {}, ""
        elif job is not None and (m := _ATTR.match(line)):
            last = m.group(1)
            attrs[last] = m.group(2).strip()
        elif job is not None and last and line.startswith("\t") and line.strip():
            attrs[last] += line[1:].rstrip()  # PBS Pro and Torque wrap long values onto tab-led lines
        elif job is None and line.strip():  # an error printed with exit 0 is not an empty queue
            raise ValueError(f"qstat printed a line outside any job: {line[:200]!r}")
    if job is not None:
        yield job, attrs


def parse_qstat_full(
    stdout: str, states: Mapping[str, JobState] = PBS_STATES, *, accounting: bool = False
) -> list[JobStatus]:
    """Parse ``qstat -f`` (Torque, PBS Pro, Slurm's wrappers; ``-x``/``-t`` variants alike)."""
    out = []
    for job, attrs in _full_records(stdout):
        status = _status(job, attrs, states, accounting)
        if status is not None:
            out.append(status)
    return out


def parse_qstat_json(
    stdout: str, states: Mapping[str, JobState] = PBS_STATES, *, accounting: bool = False
) -> list[JobStatus]:
    """Parse OpenPBS/PBS Pro ``qstat -f -F json`` (``{"Jobs": {id: {attribute: value}}}``)."""
    if not stdout.strip():
        return []
    data = load_json(stdout, "qstat -F json")
    jobs = (data.get("Jobs") or {}) if isinstance(data, dict) else None
    if not isinstance(jobs, dict):  # {"Jobs": [1, 2]}: not a listing of jobs
        raise ValueError(f"qstat -F json printed no Jobs object: {stdout[:200]!r}")
    out = []
    for job, attrs in jobs.items():
        if isinstance(attrs, dict):
            status = _status(job, attrs, states, accounting)
            if status is not None:
                out.append(status)
    return out


_TRACE_JOB = re.compile(r"^Job:\s*(\S+)", re.MULTILINE)
_TRACE_EXIT = re.compile(r"\bExit_status=(-?\d+)")
_TRACE_NAME = re.compile(r"\bjobname=(\S+)")


def parse_tracejob(stdout: str) -> list[JobStatus]:
    """Parse Torque's ``tracejob``: the last ``Exit_status=`` decides; a deletion without one
    is CANCELLED; a job with neither is not reported (still unknown)."""
    out = []
    heads = list(_TRACE_JOB.finditer(stdout))
    for i, head in enumerate(heads):
        block = stdout[head.end() : heads[i + 1].start() if i + 1 < len(heads) else len(stdout)]
        job_id, index, _ = _short_id(head.group(1))
        codes = _TRACE_EXIT.findall(block)
        names = _TRACE_NAME.findall(block)
        if codes:
            code: int | None = int(codes[-1])
            state = PBS_EXIT_STATES.get(int(codes[-1]), JobState.FAILED)
        elif "deleted" in block.lower():
            code, state = None, JobState.CANCELLED
        else:
            continue
        tag = names[-1] if names else ""
        out.append(JobStatus(job_id, state, "tracejob", tag, index, code, "", True))
    return out


class PbsProvider(BatchProvider):
    """Pilots as PBS batch jobs; subclasses set the dialect (see the module docstring)."""

    backend = "pbs"
    directive_prefix = "#PBS"
    array_index_var = "PBS_ARRAY_INDEX"
    array_base = 0
    state_table: ClassVar[Mapping[str, JobState]] = PBS_STATES
    job_id_grammar = _JOB_ID
    accounting_merge = True
    #: how arrays are asked for ("" when the dialect has none the factory can observe)
    array_option: ClassVar[str] = "-J"

    # -- submit ---------------------------------------------------------------------------
    def resources(self, submission: Submission) -> list[str]:
        p = submission.pilots[0]
        gpus = f":ngpus={p.gpus}" if p.gpus else ""
        return [f"-l select=1:ncpus={p.cpus}:mem={p.memory_mb}mb{gpus}"]

    def job_directives(self, submission: Submission) -> list[str]:
        batch = self.config.batch
        n = len(submission.pilots)
        out = [
            f"-N {self.word(submission.tag, 'job name')}",
            f"-o {self.word(batch.work_dir, 'work_dir')}/",
            "-j oe",
            *self.resources(submission),
            f"-l walltime={self.hhmmss(submission.pilots[0].walltime_s)}",
        ]
        if n > 1:
            out.append(f"{self.array_option} 0-{n - 1}")
        return out

    def submit_argv(self, submission: Submission) -> list[str]:
        return [self.command("qsub")]

    def parse_submit(self, stdout: str, submission: Submission) -> list[str]:
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        job_id, _, _ = _short_id(lines[-1].split()[-1])  # "123.server", "123[].server", "123"
        if len(submission.pilots) == 1:
            return [job_id]
        base = job_id.removesuffix("[]")
        return [f"{base}[{i}]" for i in range(len(submission.pilots))]

    # -- observe ----------------------------------------------------------------------------
    def queue_argv(self) -> list[str]:
        if self.config.batch.json_output:
            return [self.command("qstat"), "-f", "-F", "json", "-t"]
        return [self.command("qstat"), "-f", "-t"]

    def parse_queue(self, stdout: str) -> list[JobStatus]:
        if stdout.lstrip().startswith("{"):
            return parse_qstat_json(stdout, self.state_table)
        return parse_qstat_full(stdout, self.state_table)

    def accounting_argv(self, key: str) -> list[str]:
        fmt = ["-F", "json"] if self.config.batch.json_output else []
        return [self.command("qstat"), "-x", "-f", *fmt, key]

    # -- cancel -----------------------------------------------------------------------------
    def cancel_argvs(self, job_ids: Sequence[str], graceful: bool) -> list[list[str]]:
        qdel = [self.command("qdel"), *job_ids]
        if graceful:
            return [[self.command("qsig"), "-s", "TERM", *job_ids], qdel]
        return [qdel]


class PbsProProvider(PbsProvider):
    """PBS Pro / OpenPBS."""


class TorqueProvider(PbsProvider):
    """Torque (PBS classic)."""

    array_index_var = "PBS_ARRAYID"
    array_option = "-t"

    def resources(self, submission: Submission) -> list[str]:
        p = submission.pilots[0]
        gpus = f":gpus={p.gpus}" if p.gpus else ""
        return [f"-l nodes=1:ppn={p.cpus}{gpus}", f"-l mem={p.memory_mb}mb"]

    def queue_argv(self) -> list[str]:
        return [self.command("qstat"), "-f", "-t"]  # Torque's -x means XML, not history

    def accounting_argv(self, key: str) -> list[str]:
        return [self.command("tracejob"), "-q", "-n", "3", key]

    def parse_accounting(self, stdout: str) -> list[JobStatus]:
        return parse_tracejob(stdout)


class SlurmPbsProvider(TorqueProvider):
    """Slurm's PBS wrappers (Debian slurm-wlm-torque): Torque syntax, one job per pilot."""

    array_index_var = "PBS_ARRAY_INDEX"  # set by Slurm's spank_pbs plugin
    array_option = ""
    state_table = SLURM_WRAPPER_STATES

    def script_path(self, submission: Submission) -> str | None:
        work_dir = self.word(self.config.batch.work_dir, "work_dir")
        return f"{work_dir}/{self.word(submission.tag, 'job name')}-{submission.pilots[0].pilot_id}.sh"

    def submit_argv(self, submission: Submission) -> list[str]:
        # the wrapper pastes its arguments into a shell line: every value here is a checked word
        out = f"{self.word(self.config.batch.work_dir, 'work_dir')}/{submission.tag}-%j.out"
        return [self.command("qsub"), "-j", "oe", "-o", out]

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        out: list[SubmittedPilot] = []
        for pilot in submission.pilots:
            out += await super().submit(replace(submission, pilots=(pilot,)))
        return out

    def queue_argv(self) -> list[str]:
        return [self.command("qstat"), "-f"]

    def queue_empty(self, result: CommandResult) -> bool:
        return result.returncode == 153 and not result.stdout.strip()  # "nothing found"

    def accounting_argvs(self, job_ids: Sequence[str]) -> list[list[str]]:
        return []  # the wrappers keep no history: Slurm's MinJobAge is all there is

    def cancel_argvs(self, job_ids: Sequence[str], graceful: bool) -> list[list[str]]:
        return [[self.command("qdel"), *job_ids]]  # no qsig among the wrappers; qdel kills


_FLAVORS: dict[str, type[PbsProvider]] = {
    "pbspro": PbsProProvider,
    "torque": TorqueProvider,
    "slurm": SlurmPbsProvider,
}


def pbs_provider(
    site: SiteConfig,
    pilot: PilotOptions,
    executor: Executor,
    factory_name: str,
    glidein: GlideinBuilder | None = None,
) -> PbsProvider:
    """The provider for ``site.batch.pbs_flavor``."""
    return _FLAVORS[site.batch.pbs_flavor](site, pilot, executor, factory_name, glidein)
