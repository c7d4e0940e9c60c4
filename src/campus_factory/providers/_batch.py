"""The shared machinery of batch-scheduler providers (dask-jobqueue style).

A scheduler module subclasses :class:`BatchProvider` and declares its commands, directives,
state table and parsers; this base renders the script, runs the commands through the injected
executor, looks jobs missing from the queue up in accounting, and translates errors once.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from ..config import PilotOptions, SiteConfig
from ..errors import CommandError, ConfigError, ProviderError, SubmitError, UnsafeValueError
from ..pilot.payload import GlideinBuilder, submission_script
from ..transport.executor import CommandResult, Executor
from .base import CancelResult, JobState, JobStatus, Observation, Submission, SubmittedPilot

__all__ = ["MAX_JSON_NESTING", "BatchProvider", "load_json"]

log = logging.getLogger(__name__)

MAX_JSON_NESTING = 32
_JSON_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def load_json(text: str, what: str) -> Any:
    """JSON a scheduler printed, nested at most :data:`MAX_JSON_NESTING` deep (deeper JSON would
    exhaust the parser's recursion); ValueError, naming ``what``, when it is not such JSON."""
    depth = 0
    for bracket in _JSON_BRACKETS.findall(text):
        if bracket in "[{":
            depth += 1
            if depth > MAX_JSON_NESTING:
                raise ValueError(f"{what} printed JSON nested deeper than {MAX_JSON_NESTING} levels")
        elif bracket in "]}":
            depth -= 1
    try:  # strict=False: some OpenPBS releases leave control characters unescaped in values
        return json.loads(text, strict=False)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{what} printed invalid JSON: {str(exc)[:200]}") from None


_WORD = re.compile(r"[A-Za-z0-9_./:@%+=,-]+")


class BatchProvider(ABC):
    """Base of every batch-scheduler provider; subclasses are mostly declarations."""

    #: name used in messages
    backend: ClassVar[str]
    #: prefix of directive lines in the batch script, e.g. "#SBATCH"
    directive_prefix: ClassVar[str]
    #: the environment variable holding a job's index in an array, and its first value
    array_index_var: ClassVar[str]
    array_base: ClassVar[int] = 0
    #: native state -> JobState
    state_table: ClassVar[Mapping[str, JobState]]
    #: False: accounting commands are alternatives, tried in order until one finds something
    #: (Slurm: sacct, then sacct -c). True: each command looks up some of the jobs (qacct -j and
    #: tracejob take one job each): all are run and their findings merged; a timeout stops them.
    accounting_merge: ClassVar[bool] = False
    #: the directives that name the site's queue, account and QOS (``batch.partition``,
    #: ``batch.account``, ``batch.qos``), each a format over the checked value; a key left out is
    #: a request the scheduler does not have, and a configured value for it is refused
    queue_directives: ClassVar[Mapping[str, str]] = {"partition": "-q {}", "account": "-A {}"}
    #: accounting is asked once per array (the job id up to this separator: SGE ``7.1`` -> ``7``,
    #: LSF ``5[2]`` -> ``5``), or once per job when None
    accounting_array_separator: ClassVar[str | None] = None
    #: the grammar of this backend's job ids, matched in full: an id from the site that does not
    #: match (``--user=root`` as a job id) is dropped from observations and never reaches a command
    job_id_grammar: ClassVar[re.Pattern[str]] = re.compile(r"[0-9]{1,18}")
    #: False: the array variable is not a number outside arrays (SGE: "undefined", LSF: 0 with
    #: base 1); one-pilot submissions then read a variable nobody sets and take their only id
    index_outside_arrays: ClassVar[bool] = True

    def __init__(
        self,
        site: SiteConfig,
        pilot: PilotOptions,
        executor: Executor,
        factory_name: str,
        glidein: GlideinBuilder | None = None,
    ) -> None:
        self.site = site.name
        self.config = site
        self.pilot = pilot
        self.executor = executor
        self.factory_name = factory_name
        self.glidein = glidein
        self._work_dir_ready = False
        if site.batch.qos and "qos" not in self.queue_directives:
            raise ConfigError(
                f"sites[{site.name}].batch.qos: {self.backend.upper()} has no QOS; use partition (the queue)"
            )

    # -- declarations ---------------------------------------------------------------------
    @abstractmethod
    def job_directives(self, submission: Submission) -> list[str]:
        """The job's own options (name, output, shape, walltime, array), one directive each."""

    @abstractmethod
    def submit_argv(self, submission: Submission) -> list[str]:
        """The submit command; the script arrives on its standard input."""

    @abstractmethod
    def parse_submit(self, stdout: str, submission: Submission) -> list[str]:
        """Job ids, one per pilot, in the order of ``submission.pilots``."""

    @abstractmethod
    def queue_argv(self) -> list[str]:
        """One command that lists this user's jobs at the site."""

    @abstractmethod
    def parse_queue(self, stdout: str) -> list[JobStatus]:
        """Parse the queue listing."""

    def accounting_argv(self, key: str) -> list[str]:
        """The accounting command for one job (or one array, see ``accounting_array_separator``)."""
        raise NotImplementedError(f"{self.backend} declares no accounting command")

    @abstractmethod
    def cancel_argvs(self, job_ids: Sequence[str], graceful: bool) -> list[list[str]]:
        """Cancel commands to try in order until one succeeds."""

    # -- what the declarations make ----------------------------------------------------------
    def directives(self, submission: Submission) -> list[str]:
        """Scheduler options of the batch script: the job's own, then the site's queue, account
        and QOS as :attr:`queue_directives` declares them, then ``batch.extra_directives``."""
        batch = self.config.batch
        site = [
            fmt.format(self.word(value, key))
            for key, fmt in self.queue_directives.items()
            if (value := getattr(batch, key))
        ]
        return [*self.job_directives(submission), *site, *batch.extra_directives]

    def accounting_argvs(self, job_ids: Sequence[str]) -> list[list[str]]:
        """Accounting commands for jobs gone from the queue: one per job or array, all run and
        merged (``accounting_merge``), or alternatives tried in order (may be empty)."""
        if self.config.batch.accounting == "none":
            return []
        sep = self.accounting_array_separator
        keys = dict.fromkeys(j.split(sep, 1)[0] if sep else j for j in job_ids)
        return [self.accounting_argv(k) for k in keys]

    def parse_accounting(self, stdout: str) -> list[JobStatus]:
        """Parse an accounting listing; by default it reads like the queue listing."""
        return [replace(s, from_accounting=True) for s in self.parse_queue(stdout)]

    # -- optional hooks (the defaults keep the original behaviour) ---------------------------
    def script_path(self, submission: Submission) -> str | None:
        """None: the script goes to the submit command's stdin. A path: the script is staged
        there on the site first (``sh -c 'cat > "$1"'``) and the path appended to the submit argv."""
        return None

    def index_var(self, submission: Submission) -> str:
        """The variable the script reads its array index from (see ``index_outside_arrays``)."""
        if len(submission.pilots) == 1 and not self.index_outside_arrays:
            return "CAMPUS_FACTORY_NO_ARRAY"
        return self.array_index_var

    def queue_empty(self, result: CommandResult) -> bool:
        """Whether a failed queue listing only means "no jobs" (some qstat/bjobs exit non-zero)."""
        return False

    # -- helpers for subclasses -------------------------------------------------------------
    @staticmethod
    def walltime_minutes(seconds: float) -> int:
        return max(1, math.ceil(seconds / 60))

    @staticmethod
    def hhmmss(seconds: float) -> str:
        total = max(60, math.ceil(seconds))
        return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"

    @staticmethod
    def word(value: str, what: str) -> str:
        """A value that a scheduler splits on blanks or a wrapper pastes into a shell line:
        letters, digits and ``_ . / : @ % + = , -`` only; anything else is rejected."""
        if not _WORD.fullmatch(value):
            raise UnsafeValueError(f"{what} {value!r} may only hold letters, digits and _ . / : @ % + = , -")
        return value

    def valid_id(self, job_id: str) -> bool:
        """Whether ``job_id`` is a job id of this backend (:attr:`job_id_grammar`, in full)."""
        return isinstance(job_id, str) and self.job_id_grammar.fullmatch(job_id) is not None

    def command(self, name: str) -> str:
        """A scheduler command, under ``batch.bin_dir`` when that is set."""
        bin_dir = self.config.batch.bin_dir
        return posixpath.join(bin_dir, name) if bin_dir else name

    async def _run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        return await self.executor.run(
            argv,
            timeout=self.config.batch.command_timeout,
            stdin=stdin,
            env=self.config.batch.environment or None,
        )

    # -- the contract -----------------------------------------------------------------------
    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        if not submission.pilots:
            return []
        script, token = await submission_script(
            self.config,
            self.pilot,
            self.glidein,
            self.factory_name,
            submission.submission_id,
            submission.pilots,
            [p.pilot_id for p in submission.pilots],
            index_var=self.index_var(submission),
            array_base=self.array_base,
            directive_prefix=self.directive_prefix,
            directives=self.directives(submission),
            summary_dir=self.config.batch.work_dir,
        )
        try:
            if not self._work_dir_ready:
                (await self._run(["mkdir", "-p", self.config.batch.work_dir])).check(site=self.site)
                self._work_dir_ready = True
            path = self.script_path(submission)
            if path is None:
                result = await self._run(self.submit_argv(submission), stdin=script)
            else:
                stage = ["sh", "-c", 'umask 077 && cat > "$1"', "sh", path]
                (await self._run(stage, stdin=script)).check(site=self.site, message="cannot stage the script")
                result = await self._run([*self.submit_argv(submission), path])
            result.check(site=self.site, message=f"{self.backend} submission failed")
        except CommandError as exc:
            msg = f"{self.site}: {exc}"
            if token is not None:  # a chatty scheduler may echo the script, with its token, on stderr
                msg = msg.replace(token, "***")
            raise SubmitError(msg, site=self.site) from exc
        try:
            ids = self.parse_submit(result.stdout, submission)
        except (ValueError, IndexError) as exc:
            raise SubmitError(
                f"{self.site}: cannot read the job id from {self.backend}'s answer "
                f"{result.stdout.strip()!r} (stderr: {result.stderr.strip()!r})",
                site=self.site,
            ) from exc
        if len(ids) != len(submission.pilots):
            raise SubmitError(f"{self.site}: expected {len(submission.pilots)} job ids, got {ids}")
        bad = [j for j in ids if not self.valid_id(j)]
        if bad:
            raise SubmitError(f"{self.site}: {self.backend} answered {bad[0][:80]!r}, not a job id", site=self.site)
        return [SubmittedPilot(p.pilot_id, j) for p, j in zip(submission.pilots, ids, strict=True)]

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        try:
            listing = await self._run(self.queue_argv())
            if not self.queue_empty(listing):
                listing.check(site=self.site, message=f"{self.backend} queue query failed")
        except CommandError as exc:
            raise ProviderError(f"{self.site}: {exc}", site=self.site) from exc
        stdout = listing.stdout if listing.ok else ""
        try:
            parsed = self.parse_queue(stdout)
        except ValueError as exc:
            msg = f"{self.site}: cannot read the {self.backend} queue listing: {exc}"
            raise ProviderError(msg, site=self.site) from exc
        queue = {s.job_id: s for s in parsed if self.valid_id(s.job_id)}
        if len(queue) < len(parsed):
            dropped = len(parsed) - len(queue)
            log.warning("%s: ignored %d queue entries whose job id is not a %s id", self.site, dropped, self.backend)
        statuses: dict[str, JobStatus] = {j: queue[j] for j in job_ids if j in queue}
        missing = [j for j in job_ids if j not in queue]
        if missing:
            found = await self._accounting([j for j in missing if self.valid_id(j)])
            for job_id in missing:
                statuses[job_id] = found.get(job_id) or JobStatus(
                    job_id, JobState.GONE, reason="not in the queue nor in accounting"
                )
        tagged = [s for s in queue.values() if s.tag.startswith(tag_prefix)]
        return Observation(statuses=statuses, tagged=tagged)

    async def _accounting(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        merged: dict[str, JobStatus] = {}
        for argv in self.accounting_argvs(job_ids):
            try:
                result = await self._run(argv)
            except CommandError as exc:
                log.warning("%s: accounting command %s failed: %s", self.site, argv[0], exc)
                if self.accounting_merge:
                    break
                continue
            if not result.ok:
                log.debug("%s: %s exited %s: %s", self.site, argv, result.returncode, result.stderr)
                continue
            try:
                parsed = self.parse_accounting(result.stdout)
            except ValueError as exc:
                log.warning("%s: cannot read the answer of %s: %s", self.site, argv[0], exc)
                continue
            found = {s.job_id: s for s in parsed if s.job_id in job_ids}
            if found and not self.accounting_merge:
                return found
            for job_id, status in found.items():
                merged.setdefault(job_id, status)
        return merged

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        ids = [j for j in job_ids if self.valid_id(j)]
        refused = [CancelResult(j, False, f"not a {self.backend} job id") for j in job_ids if not self.valid_id(j)]
        return [*await self._cancel(ids, graceful), *refused] if ids else refused

    async def _cancel(self, job_ids: Sequence[str], graceful: bool) -> list[CancelResult]:
        """Cancel checked job ids: the :meth:`cancel_argvs` in order until one succeeds."""
        errors: list[str] = []
        for argv in self.cancel_argvs(job_ids, graceful):
            try:
                result = await self._run(argv)
            except CommandError as exc:
                errors.append(str(exc))
                continue
            if result.ok:
                return [CancelResult(j, True) for j in job_ids]
            errors.append(f"{' '.join(argv[:3])} exited {result.returncode}: {result.stderr.strip()}")
        detail = "; ".join(errors)
        log.warning("%s: cancel of %s failed: %s", self.site, list(job_ids), detail)
        return [CancelResult(j, False, detail) for j in job_ids]
