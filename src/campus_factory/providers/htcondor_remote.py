"""Remote HTCondor: pilots as jobs in another pool's schedd, or an HTCondor-CE, through ``htcondor2``.

A submission is one cluster of ``count`` procs, submitted with ``spool=True`` and its executable
(the rendered pilot script) spooled, so nothing needs a shared file system; the proc number
reaches the script as ``CAMPUS_FACTORY_PROC``. Pilots carry ``+CampusFactoryTag`` and their
submission's ``JobBatchName``. ``observe`` is one ``Schedd.query`` on the tag prefix, then
``Schedd.history`` for jobs gone from the queue. ``cancel`` is ``JobAction.Remove``: the schedd
sends the job's KillSig (TERM), which the pilot traps, whether the cancel is graceful or not.

Blocking binding calls run in a worker thread, each bounded by ``batch.command_timeout`` (a call
that hangs is abandoned, its thread finishes on its own). Authentication is HTCondor's client
configuration of the factory's account (CONDOR_CONFIG, IDTOKENs in ~/.condor/tokens.d or
SEC_TOKEN_DIRECTORY): the bindings have no per-schedd credentials, and schedds refuse jobs owned
by root. An HTCondor-CE is a schedd too: ``collector = "ce.example.edu:9619"``.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..config import PilotOptions, SiteConfig
from ..errors import ConfigError, ProviderError, SubmitError, UnsafeValueError
from ..pilot.payload import GlideinBuilder, submission_script
from ..pilot.script import check_directive
from .base import CancelResult, JobState, JobStatus, Observation, Submission, SubmittedPilot, translate_state

__all__ = ["HTCONDOR_STATES", "HTCondorRemoteProvider", "job_status", "submit_description"]

T = TypeVar("T")

HTCONDOR_STATES: dict[str, JobState] = {
    "IDLE": JobState.PENDING,
    "HELD": JobState.PENDING,  # waits for a release (or for us to cancel it)
    "RUNNING": JobState.RUNNING,
    "TRANSFERRING_OUTPUT": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,  # refined by ExitCode / ExitBySignal
    "REMOVED": JobState.CANCELLED,
}
_STATUS_NAMES = {
    1: "IDLE",
    2: "RUNNING",
    3: "REMOVED",
    4: "COMPLETED",
    5: "HELD",
    6: "TRANSFERRING_OUTPUT",
    7: "SUSPENDED",
}
_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "CampusFactoryTag",
    "ExitCode",
    "ExitBySignal",
    "ExitSignal",
    "HoldReason",
    "RemoveReason",
    "TotalSubmitProcs",
]
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
INDEX_VAR = "CAMPUS_FACTORY_PROC"


def _safe_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise UnsafeValueError(f"invalid job tag {tag!r}")
    return tag


def submit_description(site: SiteConfig, submission: Submission, executable: str) -> dict[str, str]:
    """The submit commands of one submission (its ``count`` is the number of pilots)."""
    first = submission.pilots[0]
    tag = _safe_tag(submission.tag)
    desc = {
        "universe": "vanilla",
        "executable": executable,
        "transfer_executable": "true",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "output": f"{tag}.$(Cluster).$(Process).out",
        "error": f"{tag}.$(Cluster).$(Process).out",
        "environment": f'"{INDEX_VAR}=$(Process)"',
        "batch_name": tag,
        "+CampusFactoryTag": f'"{tag}"',
        "request_cpus": str(first.cpus),
        "request_memory": f"{first.memory_mb}MB",
        "request_disk": f"{max(first.disk_mb, 1)}MB",
        "allowed_execute_duration": str(int(first.walltime_s)),
    }
    if first.gpus:
        desc["request_gpus"] = str(first.gpus)
    if site.htcondor.requirements:
        desc["requirements"] = check_directive(site.htcondor.requirements)
    for key, value in site.htcondor.submit.items():
        if not re.fullmatch(r"\+?[A-Za-z_][A-Za-z0-9_.]*", key):
            raise UnsafeValueError(f"invalid submit command {key!r}")
        desc[key] = check_directive(value)
    return desc


def job_status(ad: Mapping[str, Any], accounting: bool = False) -> JobStatus:
    """A job ad (queue or history) as a :class:`JobStatus`."""
    code_num = int(ad.get("JobStatus", 0))
    native = _STATUS_NAMES.get(code_num, str(code_num))
    state = translate_state(native, HTCONDOR_STATES, "htcondor")
    exit_code: int | None = None
    if ad.get("ExitBySignal") is True:
        exit_code = 128 + int(ad.get("ExitSignal", 0))
    elif isinstance(ad.get("ExitCode"), int):
        exit_code = int(ad["ExitCode"])
    if state is JobState.COMPLETED and exit_code not in (None, 0):
        state = JobState.FAILED
    procs = ad.get("TotalSubmitProcs")
    many = isinstance(procs, int) and procs > 1
    return JobStatus(
        job_id=f"{ad['ClusterId']}.{ad['ProcId']}",
        state=state,
        native_state=native,
        tag=str(ad.get("CampusFactoryTag", "")),
        array_index=int(ad["ProcId"]) if many else None,
        exit_code=exit_code,
        reason=str(ad.get("HoldReason") or ad.get("RemoveReason") or ""),
        from_accounting=accounting,
    )


class HTCondorRemoteProvider:
    """Pilots as jobs of a remote schedd."""

    backend = "htcondor"

    def __init__(
        self, site: SiteConfig, pilot: PilotOptions, factory_name: str, glidein: GlideinBuilder | None = None
    ) -> None:
        if not site.htcondor.collector:
            raise ConfigError(f"sites[{site.name}].htcondor.collector: an htcondor site needs the remote collector")
        if site.transport.kind != "local":
            raise ConfigError(f"sites[{site.name}].transport: htcondor sites talk to the schedd directly")
        self.site = site.name
        self.config = site
        self.pilot = pilot
        self.factory_name = factory_name
        self.glidein = glidein
        self.timeout = site.batch.command_timeout
        self._schedd_ad: Any = None

    # -- the bindings, off the event loop -----------------------------------------------------
    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        import htcondor2

        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), self.timeout)
        except TimeoutError:
            raise ProviderError(f"{self.site}: {what} timed out after {self.timeout:g} s", site=self.site) from None
        except (htcondor2.HTCondorException, RuntimeError, ValueError, OSError) as exc:
            self._schedd_ad = None  # locate it again next time
            raise ProviderError(f"{self.site}: {what} failed: {exc}", site=self.site) from exc

    def _schedd(self) -> Any:
        import htcondor2

        if self._schedd_ad is None:
            collector = htcondor2.Collector(self.config.htcondor.collector)
            name = self.config.htcondor.schedd
            # locate() without a name would look for this host's own schedd: list them instead
            ads = collector.locateAll(htcondor2.DaemonType.Schedd)
            if name:  # "name" matches "name" and "name@host"
                ads = [a for a in ads if str(a.get("Name", "")) == name or str(a.get("Name", "")).split("@")[0] == name]
            if not ads:
                raise ValueError(f"no schedd {name or ''} known to the collector {self.config.htcondor.collector}")
            self._schedd_ad = ads[0]
        return htcondor2.Schedd(self._schedd_ad)

    # -- the contract -------------------------------------------------------------------------
    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        if not submission.pilots:
            return []
        import htcondor2

        script, token = await submission_script(
            self.config,
            self.pilot,
            self.glidein,
            self.factory_name,
            submission.submission_id,
            submission.pilots,
            [p.pilot_id for p in submission.pilots],
            index_var=INDEX_VAR,
        )
        count = len(submission.pilots)
        with tempfile.TemporaryDirectory(prefix="cf-htcondor-") as tmp:
            executable = Path(tmp) / f"{_safe_tag(submission.tag)}.sh"
            executable.write_text(script)
            executable.chmod(0o755)
            description = htcondor2.Submit(submit_description(self.config, submission, str(executable)))

            def submit_and_spool() -> int:
                schedd = self._schedd()
                result = schedd.submit(description, count=count, spool=True)
                schedd.spool(result)
                return int(result.cluster())

            try:
                cluster = await self._call("submit", submit_and_spool)
            except ProviderError as exc:
                msg = str(exc) if token is None else str(exc).replace(token, "***")  # never echo the token
                raise SubmitError(msg, site=self.site) from exc
        return [SubmittedPilot(p.pilot_id, f"{cluster}.{i}") for i, p in enumerate(submission.pilots)]

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        prefix = _safe_tag(tag_prefix)
        constraint = f'CampusFactoryTag =!= undefined && substr(CampusFactoryTag, 0, {len(prefix)}) == "{prefix}"'
        ads = await self._call("queue query", lambda: self._schedd().query(constraint, _PROJECTION))
        queue = {s.job_id: s for s in (job_status(ad) for ad in ads)}
        statuses = {j: queue[j] for j in job_ids if j in queue}
        missing = [j for j in job_ids if j not in queue]
        if missing:
            found = await self._history(missing)
            for job_id in missing:
                statuses[job_id] = found.get(job_id) or JobStatus(
                    job_id, JobState.GONE, reason="not in the queue nor in the history"
                )
        return Observation(statuses=statuses, tagged=list(queue.values()))

    async def _history(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        terms = []
        for job_id in job_ids:
            cluster, _, proc = job_id.partition(".")
            if cluster.isdigit() and proc.isdigit():
                terms.append(f"(ClusterId == {cluster} && ProcId == {proc})")
        if not terms:
            return {}
        constraint = " || ".join(terms)
        ads = await self._call(
            "history query", lambda: self._schedd().history(constraint, _PROJECTION, match=len(terms))
        )
        found: dict[str, JobStatus] = {}
        for ad in ads:
            status = job_status(ad, accounting=True)
            found.setdefault(status.job_id, status)
        return found

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        if not job_ids:
            return []
        import htcondor2

        ids = [j for j in job_ids if re.fullmatch(r"\d+\.\d+", j)]
        try:
            result = await self._call(
                "remove",
                lambda: self._schedd().act(htcondor2.JobAction.Remove, ids, "campus-factory: pilot not needed"),
            )
        except ProviderError as exc:
            return [CancelResult(j, False, str(exc)) for j in job_ids]
        errors = sum(int(result.get(k, 0)) for k in ("TotalError", "TotalPermissionDenied", "TotalBadStatus"))
        detail = "" if not errors else f"schedd answered {dict(result)}"
        return [
            CancelResult(j, j in ids and not errors, detail or ("" if j in ids else "not a job id")) for j in job_ids
        ]
