"""What the cloud providers share: instance tags and names, user-data, error classification.

Every instance carries, from the moment it is created (tags given in the create call itself):

* ``cf-factory`` / ``cf-site``: who started it, for the one listing call per cycle;
* ``cf-tag``: the submission tag ``cf-<factory>-<submission id>``, and ``cf-index`` its index
  in a submission of several pilots (absent for a single pilot), so that an instance created
  just before a crash is matched to its ``requested`` ledger row;
* ``cf-pilot``: the pilot id, for people and the dashboard.

Its name is the submission tag, with ``-p<index>`` appended in a submission of several.

Instance types (``cloud.instance_types``): what the cloud says of each type's shape is parsed
here, at the edge, into :class:`~campus_factory.domain.InstanceShape` (bounded integers only; a
malformed answer is a :class:`ProviderError` of that site), merged with what the config declares.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from ..config import PilotOptions, SiteConfig
from ..domain import InstanceShape, PilotRequest
from ..errors import (
    CapacityUnavailable,
    ProviderError,
    QuotaExceeded,
    SubmitError,
    ThrottledError,
)
from ..pilot.cloudinit import CloudPilot, render_user_data
from ..pilot.glidein import GlideinSpec
from .base import CancelResult, JobState, JobStatus, Observation, Submission

__all__ = [
    "TAG_FACTORY",
    "TAG_INDEX",
    "TAG_LEAVE",
    "TAG_PILOT",
    "TAG_SITE",
    "TAG_SUBMISSION",
    "Deleted",
    "classify_error",
    "instance_name",
    "instance_shapes",
    "instance_tags",
    "status_from_tags",
    "type_of",
    "user_data",
]

#: bounds of a shape read from a cloud (as the config's slot: cores, MB, MB, GPUs)
_BOUNDS = {"cpus": (1, 100_000), "memory_mb": (1, 1 << 31), "disk_mb": (0, 1 << 40), "gpus": (0, 10_000)}

TAG_FACTORY = "cf-factory"
TAG_SITE = "cf-site"
TAG_SUBMISSION = "cf-tag"
TAG_INDEX = "cf-index"
TAG_PILOT = "cf-pilot"
TAG_LEAVE = "cf-leave"  # set just before we terminate: "graceful" or "now"

_QUOTA = re.compile(
    r"quota|limitexceeded|instancelimit|vcpulimit|overlimit|maxspotinstancecount|addresslimit", re.IGNORECASE
)
_CAPACITY = re.compile(r"insufficient\w*capacity|insufficientcapacity|no valid host|capacity", re.IGNORECASE)
_THROTTLE = re.compile(
    r"throttl|requestlimitexceeded|rate ?limit|too ?many ?requests|slowdown|ratelimit", re.IGNORECASE
)


def instance_name(submission: Submission, index: int) -> str:
    """The instance's name: the submission tag, plus ``-p<index>`` when it holds several pilots."""
    return submission.tag if len(submission.pilots) == 1 else f"{submission.tag}-p{index}"


def instance_tags(
    site: SiteConfig, factory: str, submission: Submission, index: int, request: PilotRequest
) -> dict[str, str]:
    """Every tag an instance is created with (the configured extra tags never override ours)."""
    tags = dict(site.cloud.tags)
    tags.update(
        {
            TAG_FACTORY: factory,
            TAG_SITE: site.name,
            TAG_SUBMISSION: submission.tag,
            TAG_PILOT: request.pilot_id,
        }
    )
    if len(submission.pilots) > 1:
        tags[TAG_INDEX] = str(index)
    return tags


def _index(tags: Mapping[str, str]) -> int | None:
    """The ``cf-index`` tag as read back from the cloud: ASCII digits only (``str.isdigit`` also
    takes ``"²"``, which ``int`` refuses), at most 9 of them."""
    raw = tags.get(TAG_INDEX)
    if not isinstance(raw, str) or not re.fullmatch(r"[0-9]{1,9}", raw):
        return None
    return int(raw)


def status_from_tags(job_id: str, state: JobState, native: str, tags: Mapping[str, str], reason: str = "") -> JobStatus:
    """A job status carrying the submission tag and array index read back from the instance."""
    return JobStatus(
        job_id,
        state,
        native_state=native,
        tag=tags.get(TAG_SUBMISSION, ""),
        array_index=_index(tags),
        reason=reason,
    )


def user_data(
    site: SiteConfig,
    pilot: PilotOptions,
    factory: str,
    submission: Submission,
    index: int,
    glidein: GlideinSpec | None = None,
) -> str:
    """The cloud-init user-data of one pilot (``glidein`` from :func:`glidein_spec`)."""
    request = submission.pilots[index]
    return render_user_data(
        CloudPilot(
            pilot_id=request.pilot_id,
            site=site.name,
            factory=factory,
            tag=submission.tag,
            walltime_s=request.walltime_s,
            payload=pilot.payload,
            command=pilot.command,
            glidein=glidein,
        )
    )


def classify_error(site: str, what: str, code: str, message: str, status: int | None = None) -> ProviderError:
    """The error to raise for a failed API call: quota, capacity and throttling errors get their
    own classes (the loop backs off from the site); anything else is a SubmitError or ProviderError."""
    text = f"{what}: {code + ': ' if code else ''}{message}".strip()
    blob = f"{code} {message}"
    if status == 429 or _THROTTLE.search(blob):
        return ThrottledError(f"{site}: throttled by the API: {text}", site=site, code=code)
    if _QUOTA.search(blob):
        return QuotaExceeded(f"{site}: quota exceeded: {text}", site=site, code=code)
    if _CAPACITY.search(blob):
        return CapacityUnavailable(f"{site}: no capacity: {text}", site=site, code=code)
    if what == "submit":
        return SubmitError(f"{site}: {text}", site=site)
    return ProviderError(f"{site}: {text}", site=site)


class Deleted:
    """Instances this process deleted (id -> whether gracefully), for clouds whose listing forgets
    deleted instances at once (Nova, Libcloud drivers, Kubernetes): the next observe reports such
    an instance ended (completed when it was asked to leave gracefully) instead of gone, once."""

    def __init__(self, limit: int = 10000) -> None:
        self.left: dict[str, bool] = {}
        self.limit = limit

    def graceful(self, job_id: str) -> bool | None:
        return self.left.get(job_id)

    def record(self, job_ids: Sequence[str], problems: Mapping[str, str], graceful: bool) -> list[CancelResult]:
        """The results of one cancel call (``problems``: id -> error) after remembering the deleted."""
        for j in job_ids:
            if j not in problems:
                self.left.setdefault(j, graceful)
        while len(self.left) > self.limit:
            self.left.pop(next(iter(self.left)))
        return [CancelResult(j, j not in problems, problems.get(j, "")) for j in job_ids]

    def observation(
        self, job_ids: Sequence[str], found: Mapping[str, JobStatus], tag_prefix: str, native: str
    ) -> Observation:
        """Statuses of ``job_ids`` from the listing (``found``), deleted ones reported once."""
        statuses = {}
        for j in job_ids:
            if j in found:
                statuses[j] = found[j]
            elif j in self.left:  # reported once: the ledger records the end and asks no more
                state = JobState.COMPLETED if self.left.pop(j) else JobState.CANCELLED
                statuses[j] = status_from_tags(j, state, native, {}, "deleted by the factory")
            else:
                statuses[j] = status_from_tags(j, JobState.GONE, "", {}, "not listed")
        return Observation(statuses=statuses, tagged=[s for s in found.values() if s.tag.startswith(tag_prefix)])


def type_of(site: SiteConfig, request: PilotRequest) -> str:
    """The instance type (flavor) to start for ``request``: the planner's choice, else the site's one."""
    if request.instance_type:
        if request.instance_type not in {t.name for t in site.cloud.instance_types}:
            raise SubmitError(f"{site.name}: instance type {request.instance_type!r} is not listed", site=site.name)
        return request.instance_type
    if site.cloud.instance_type:
        return site.cloud.instance_type
    if len(site.cloud.instance_types) == 1:
        return site.cloud.instance_types[0].name
    raise SubmitError(f"{site.name}: a pilot with no instance type at a site listing several", site=site.name)


def _bounded(site: str, name: str, key: str, value: object) -> int:
    low, high = _BOUNDS[key]
    number = value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) <= 1 << 53:
        number = int(value)
    if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
        shown = repr(value)[:40]
        raise ProviderError(
            f"{site}: the cloud's answer for instance type {name!r} is malformed: {key} = {shown} "
            f"(an integer from {low} to {high} expected)",
            site=site,
        )
    return number


def instance_shapes(site: SiteConfig, read: Mapping[str, Mapping[str, object]]) -> tuple[InstanceShape, ...]:
    """The shapes of the site's ``cloud.instance_types``: what the config declares, else what the
    cloud said (``read``: type name -> cpus, memory_mb, disk_mb (None: none listed), gpus, ref),
    checked and bounded. A type the cloud did not list and the config does not declare is an error."""
    out = []
    for t in site.cloud.instance_types:
        got = read.get(t.name, {})
        if not got and not t.declared:
            raise ProviderError(f"{site.name}: the cloud lists no instance type (flavor) {t.name!r}", site=site.name)
        values = {
            "cpus": t.cpus if t.cpus is not None else got.get("cpus"),
            "memory_mb": t.memory_mb if t.memory_mb is not None else got.get("memory_mb"),
            "disk_mb": t.disk_mb if t.disk_mb is not None else got.get("disk_mb") or site.slot.disk_mb,
            "gpus": t.gpus if t.gpus is not None else got.get("gpus", 0),
        }
        shape = {k: _bounded(site.name, t.name, k, v) for k, v in values.items()}
        cost = t.cost_per_hour if t.cost_per_hour is not None else site.cost_per_core_hour * shape["cpus"]
        ref = str(got.get("ref") or t.name)
        out.append(InstanceShape(t.name, shape["cpus"], shape["memory_mb"], shape["disk_mb"], shape["gpus"], cost, ref))
    return tuple(out)
