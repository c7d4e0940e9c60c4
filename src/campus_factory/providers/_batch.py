"""The shared machinery of batch-scheduler providers (dask-jobqueue style).

A scheduler module subclasses :class:`BatchProvider` and declares its commands, directives,
state table and parsers; this base renders the script, runs the commands through the injected
executor, looks jobs missing from the queue up in accounting, and translates errors once.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

from ..config import PilotOptions, SiteConfig
from ..errors import CommandError, NotSupportedError, ProviderError, SubmitError
from ..pilot.payload import GlideinBuilder
from ..pilot.script import PilotScript, render_batch_script
from ..transport.executor import CommandResult, Executor
from .base import CancelResult, JobState, JobStatus, Observation, Submission, SubmittedPilot

__all__ = ["BatchProvider"]

log = logging.getLogger(__name__)


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

    # -- declarations ---------------------------------------------------------------------
    @abstractmethod
    def directives(self, submission: Submission) -> list[str]:
        """Scheduler options of the batch script, one directive each."""

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

    @abstractmethod
    def accounting_argvs(self, job_ids: Sequence[str]) -> list[list[str]]:
        """Accounting commands to try in order for jobs gone from the queue (may be empty)."""

    @abstractmethod
    def parse_accounting(self, stdout: str) -> list[JobStatus]:
        """Parse an accounting listing."""

    @abstractmethod
    def cancel_argvs(self, job_ids: Sequence[str], graceful: bool) -> list[list[str]]:
        """Cancel commands to try in order until one succeeds."""

    # -- helpers for subclasses -------------------------------------------------------------
    @staticmethod
    def walltime_minutes(seconds: float) -> int:
        return max(1, math.ceil(seconds / 60))

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
        spec = None
        if self.pilot.payload == "glidein":
            if self.glidein is None:
                raise NotSupportedError(f"{self.site}: glidein payload requested but no glidein builder was given")
            spec = await self.glidein.spec(self.config, summary_dir=self.config.batch.work_dir)
        script = render_batch_script(
            PilotScript(
                directive_prefix=self.directive_prefix,
                directives=self.directives(submission),
                pilot_ids=[p.pilot_id for p in submission.pilots],
                payload=self.pilot.payload,
                command=self.pilot.command,
                environment={
                    "CAMPUS_FACTORY_SITE": self.site,
                    "CAMPUS_FACTORY_NAME": self.factory_name,
                    "CAMPUS_FACTORY_SUBMISSION": submission.submission_id,
                },
                array_index_var=self.array_index_var,
                array_base=self.array_base,
                glidein=spec,
            )
        )
        try:
            if not self._work_dir_ready:
                (await self._run(["mkdir", "-p", self.config.batch.work_dir])).check(site=self.site)
                self._work_dir_ready = True
            result = (await self._run(self.submit_argv(submission), stdin=script)).check(
                site=self.site, message=f"{self.backend} submission failed"
            )
        except CommandError as exc:
            raise SubmitError(f"{self.site}: {exc}", site=self.site) from exc
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
        return [SubmittedPilot(p.pilot_id, j) for p, j in zip(submission.pilots, ids, strict=True)]

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        try:
            listing = (await self._run(self.queue_argv())).check(
                site=self.site, message=f"{self.backend} queue query failed"
            )
        except CommandError as exc:
            raise ProviderError(f"{self.site}: {exc}", site=self.site) from exc
        queue = {s.job_id: s for s in self.parse_queue(listing.stdout)}
        statuses: dict[str, JobStatus] = {j: queue[j] for j in job_ids if j in queue}
        missing = [j for j in job_ids if j not in queue]
        if missing:
            found = await self._accounting(missing)
            for job_id in missing:
                statuses[job_id] = found.get(job_id) or JobStatus(
                    job_id, JobState.GONE, reason="not in the queue nor in accounting"
                )
        tagged = [s for s in queue.values() if s.tag.startswith(tag_prefix)]
        return Observation(statuses=statuses, tagged=tagged)

    async def _accounting(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        for argv in self.accounting_argvs(job_ids):
            try:
                result = await self._run(argv)
            except CommandError as exc:
                log.warning("%s: accounting command %s failed: %s", self.site, argv[0], exc)
                continue
            if not result.ok:
                log.debug("%s: %s exited %s: %s", self.site, argv, result.returncode, result.stderr)
                continue
            found = {s.job_id: s for s in self.parse_accounting(result.stdout) if s.job_id in job_ids}
            if found:
                return found
        return {}

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        if not job_ids:
            return []
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
