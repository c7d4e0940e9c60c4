"""IBM Spectrum LSF: pilots as ``bsub`` jobs, one job array each.

No LSF can run here: this module is tested against output documented in IBM's LSF 10.1 manuals
(see ``tests/providers/data/README.md``), never against a live cluster.

``bsub`` reads the script (``#BSUB`` directives) from stdin and prints ``Job <123> is submitted to
queue <normal>.``; arrays are ``-J "name[1-N]"`` with ``LSB_JOBINDEX`` from 1, their elements
``123[1]``... (``array_index`` stays the 0-based position in the submission), and bjobs shows an
element's name as ``name[i]``. ``bjobs`` lists unfinished jobs, with ``-json`` (LSF 10.1.0.2+)
or ``-noheader -o "... delimiter='|'"``; jobs missing from it are looked up with ``bjobs -a
<job>`` (finished jobs stay there for CLEAN_PERIOD, one hour by default). ``-wa TERM -wt M`` asks
the pilot to leave ``term_margin`` before the run limit; a graceful cancel is ``bkill -s TERM``,
falling back to ``bkill``. EXIT after a kill (exit code 130/137/143) is CANCELLED, other EXIT
is FAILED, DONE is COMPLETED.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..transport.executor import CommandResult
from ._batch import BatchProvider, load_json
from .base import JobState, JobStatus, Submission, translate_state

_JOB_ID = re.compile(r"[0-9]{1,18}(?:\[[0-9]{1,9}\])?")  # the job ids this backend prints (matched in full)

__all__ = ["LSF_FIELDS", "LSF_STATES", "LsfProvider", "parse_bjobs"]

LSF_STATES: dict[str, JobState] = {
    "PEND": JobState.PENDING,
    "PSUSP": JobState.PENDING,  # suspended while pending
    "WAIT": JobState.PENDING,  # chunk job member waiting
    "PROV": JobState.PENDING,  # host being provisioned
    "RUN": JobState.RUNNING,
    "USUSP": JobState.RUNNING,  # suspended by its owner while running
    "SSUSP": JobState.RUNNING,  # suspended by LSF while running
    "DONE": JobState.COMPLETED,
    "EXIT": JobState.FAILED,  # refined: a killed job is CANCELLED
    "ZOMBI": JobState.CANCELLED,  # killed while its host was unreachable
    "UNKWN": JobState.UNKNOWN,  # mbatchd lost contact with the host: no news, not an end
}
_KILLED = (128 + 2, 128 + 9, 128 + 15)  # bkill sends INT, TERM, then KILL

#: the bjobs -o fields, in the order of the delimited output
LSF_FIELDS = ("jobid", "jobindex", "stat", "exit_code", "job_name")

_SUBMITTED = re.compile(r"Job <(\d+)>")
_NAME_INDEX = re.compile(r"\[\d+\]$")
_NOT_FOUND = re.compile(r"^(No unfinished job found|Job <[^>]*> is not found)\s*$")


def _status(record: Mapping[str, Any], accounting: bool) -> JobStatus | None:
    number = str(record.get("JOBID", "")).strip()
    if not number.isdigit() or record.get("ERROR"):
        return None
    index_text = str(record.get("JOBINDEX", "")).strip()
    index = int(index_text) if index_text.isdigit() and int(index_text) > 0 else None
    native = str(record.get("STAT", "")).strip()
    state = translate_state(native, LSF_STATES, "lsf")
    code_text = str(record.get("EXIT_CODE", "")).strip()
    code = int(code_text) if code_text.lstrip("-").isdigit() else None
    if native.upper() == "DONE" and code is None:
        code = 0
    if state is JobState.FAILED and code in _KILLED:
        state = JobState.CANCELLED
    name = _NAME_INDEX.sub("", str(record.get("JOB_NAME", "")).strip())
    return JobStatus(
        job_id=number if index is None else f"{number}[{index}]",
        state=state,
        native_state=native,
        tag=name,
        array_index=None if index is None else index - 1,
        exit_code=code,
        reason=str(record.get("PEND_REASON", "") or record.get("EXIT_REASON", "")).strip(),
        from_accounting=accounting,
    )


def parse_bjobs(stdout: str, *, accounting: bool = False) -> list[JobStatus]:
    """Parse ``bjobs -json -o ...`` or ``bjobs -noheader -o "... delimiter='|'"`` (fields
    :data:`LSF_FIELDS`); "No unfinished job found" and "Job <x> is not found" lines are skipped."""
    text = stdout.strip()
    if not text:
        return []
    if text.startswith("{"):
        data = load_json(text, "bjobs -json")
        records = data.get("RECORDS", []) if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise ValueError(f"bjobs -json printed no RECORDS list: {text[:200]!r}")
    else:
        records = []
        for line in text.splitlines():
            parts = line.split("|", len(LSF_FIELDS) - 1)
            if len(parts) == len(LSF_FIELDS):
                records.append(dict(zip((f.upper() for f in LSF_FIELDS), parts, strict=True)))
            elif line.strip() and not _NOT_FOUND.search(line):
                raise ValueError(f"bjobs printed a line that is not a job: {line[:200]!r}")
    out = []
    for record in records:
        if isinstance(record, dict):
            status = _status(record, accounting)
            if status is not None:
                out.append(status)
    return out


class LsfProvider(BatchProvider):
    """Pilots as LSF batch jobs."""

    backend = "lsf"
    directive_prefix = "#BSUB"
    array_index_var = "LSB_JOBINDEX"
    array_base = 1
    state_table: ClassVar[Mapping[str, JobState]] = LSF_STATES
    job_id_grammar = _JOB_ID
    accounting_merge = True
    index_outside_arrays = False
    queue_directives: ClassVar[Mapping[str, str]] = {"partition": "-q {}", "account": "-P {}"}
    accounting_array_separator = "["

    def job_directives(self, submission: Submission) -> list[str]:
        batch = self.config.batch
        first = submission.pilots[0]
        n = len(submission.pilots)
        tag = self.word(submission.tag, "job name")
        work_dir = self.word(batch.work_dir, "work_dir")
        out = [
            f'-J "{tag}[1-{n}]"' if n > 1 else f"-J {tag}",
            f"-o {work_dir}/{tag}.%J.%I.out",
            f"-n {first.cpus}",
            '-R "span[hosts=1]"',
            f'-R "rusage[mem={first.memory_mb}]"',
            f"-W {self.walltime_minutes(first.walltime_s)}",
        ]
        margin = min(self.config.batch.term_margin, first.walltime_s / 2)
        if margin >= 60:
            out += ["-wa TERM", f"-wt {math.floor(margin / 60)}"]
        if first.gpus:
            out.append(f'-gpu "num={first.gpus}"')
        return out

    def submit_argv(self, submission: Submission) -> list[str]:
        return [self.command("bsub")]

    def parse_submit(self, stdout: str, submission: Submission) -> list[str]:
        m = _SUBMITTED.search(stdout)
        if m is None:
            raise ValueError(f"no job id in {stdout!r}")
        if len(submission.pilots) == 1:
            return [m.group(1)]
        return [f"{m.group(1)}[{i}]" for i in range(1, len(submission.pilots) + 1)]

    def _bjobs(self, *jobs: str) -> list[str]:
        """bjobs of unfinished jobs, or with ``-a`` of the given (possibly finished) jobs."""
        history = ["-a"] if jobs else []
        if self.config.batch.json_output:
            return [self.command("bjobs"), *history, "-json", "-o", " ".join(LSF_FIELDS), *jobs]
        fields = " ".join(LSF_FIELDS) + " delimiter='|'"
        return [self.command("bjobs"), *history, "-noheader", "-o", fields, *jobs]

    def queue_argv(self) -> list[str]:
        return self._bjobs()

    def queue_empty(self, result: CommandResult) -> bool:
        return not result.stdout.strip() and "no unfinished job found" in result.stderr.lower()

    def parse_queue(self, stdout: str) -> list[JobStatus]:
        return parse_bjobs(stdout)

    def accounting_argv(self, key: str) -> list[str]:
        return self._bjobs(key)

    def cancel_argvs(self, job_ids: Sequence[str], graceful: bool) -> list[list[str]]:
        bkill = [self.command("bkill"), *job_ids]
        if graceful:
            return [[self.command("bkill"), "-s", "TERM", *job_ids], bkill]
        return [bkill]
