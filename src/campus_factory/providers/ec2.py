"""EC2 (and EC2-compatible clouds) through boto3: one instance per pilot.

* **submit**: one ``RunInstances`` call per pilot, with the cloud-init user-data, every tag of
  :mod:`._cloud` in ``TagSpecifications`` (so an instance is never untagged, even for a moment),
  ``InstanceInitiatedShutdownBehavior=terminate`` (a pilot that powers off is gone) and a
  ``ClientToken`` derived from the submission tag (a retried call never starts a second
  instance). When one call of a submission fails, the instances already started for it are
  terminated and the error is raised: quota, capacity and throttling errors as
  :class:`QuotaExceeded`, :class:`CapacityUnavailable`, :class:`ThrottledError`.
* **observe**: one ``DescribeInstances`` listing (paginated) filtered on the factory and site
  tags. Terminated instances map through their state reason: shut down from inside
  (``Client.InstanceInitiatedShutdown``) or terminated after a graceful leave is COMPLETED, a
  spot interruption or another user's terminate is CANCELLED, a ``Server.*`` reason is FAILED.
  Stopped instances (someone stopped them) are CANCELLED and terminated.
* **cancel**: tag ``cf-leave`` (so the end is read correctly even after a restart), then one
  ``TerminateInstances`` call. EC2 shuts the OS down cleanly first: the pilot gets a TERM either
  way, so ``graceful`` only changes how the end is recorded. Unknown ids count as done.

* **instance types**: with ``cloud.instance_types``, one ``DescribeInstanceTypes`` call gives the
  shapes of the types the config does not declare (``VCpuInfo.DefaultVCpus``,
  ``MemoryInfo.SizeInMiB``, ``InstanceStorageInfo.TotalSizeInGB``, ``GpuInfo``); each pilot is
  started as the type the planner chose for it.

botocore retries throttling and 5xx answers itself (``standard`` mode, ``cloud.max_attempts``
attempts in all); what still fails after that reaches the loop classified.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

import boto3
import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from ..config import PilotOptions, SiteConfig
from ..domain import InstanceShape
from ..errors import ProviderError, SubmitError
from ..pilot.glidein import GlideinSpec
from ..pilot.payload import GlideinBuilder, glidein_for
from ._cloud import (
    TAG_FACTORY,
    TAG_LEAVE,
    TAG_SITE,
    classify_error,
    instance_name,
    instance_shapes,
    instance_tags,
    status_from_tags,
    type_of,
    user_data,
)
from .base import CancelResult, JobState, Observation, Submission, SubmittedPilot, translate_state

__all__ = ["EC2_STATES", "Ec2Provider", "ec2_shape", "ec2_state"]

EC2_STATES: Mapping[str, JobState] = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "STOPPING": JobState.CANCELLED,
    "STOPPED": JobState.CANCELLED,
}
_ENDED = {"SHUTTING-DOWN", "TERMINATED"}
USER_DATA_LIMIT = 16384  # bytes of user-data EC2 accepts (before base64)
_NOT_FOUND = ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")


def ec2_state(instance: Mapping[str, Any]) -> tuple[JobState, str, str]:
    """(state, native state, reason) of one instance as DescribeInstances returns it."""
    name = str(instance.get("State", {}).get("Name", "unknown"))
    reason = instance.get("StateReason", {}) or {}
    code, message = str(reason.get("Code", "")), str(reason.get("Message", ""))
    tags = _tags(instance)
    native = f"{name} ({code})" if code else name
    if name.upper() not in _ENDED:
        return translate_state(name, EC2_STATES, "ec2"), native, message
    leave = tags.get(TAG_LEAVE)
    if leave == "graceful" or code == "Client.InstanceInitiatedShutdown":
        return JobState.COMPLETED, native, message or "shut down"
    if leave == "now" or code.startswith("Server.Spot") or code == "Client.UserInitiatedShutdown" or not code:
        return JobState.CANCELLED, native, message or "terminated"
    return JobState.FAILED, native, message or code


def _get(answer: Any, *path: str) -> Any:
    for key in path:
        answer = answer.get(key) if isinstance(answer, Mapping) else None
    return answer


def ec2_shape(answer: Mapping[str, Any]) -> dict[str, object]:
    """The shape of one DescribeInstanceTypes entry, unchecked (``_cloud.instance_shapes`` bounds it)."""
    counts = [_get(g, "Count") for g in _get(answer, "GpuInfo", "Gpus") or ()]
    bad = [c for c in counts if not isinstance(c, int) or isinstance(c, bool)]
    disk = _get(answer, "InstanceStorageInfo", "TotalSizeInGB")
    return {
        "cpus": _get(answer, "VCpuInfo", "DefaultVCpus"),
        "memory_mb": _get(answer, "MemoryInfo", "SizeInMiB"),
        "disk_mb": disk * 1000 if isinstance(disk, int) and not isinstance(disk, bool) else disk,
        "gpus": bad[0] if bad else sum(counts),
    }


def _tags(instance: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in instance.get("Tags", []) or []}


class Ec2Provider:
    """Pilots as EC2 instances of one site (region, image, instance type)."""

    def __init__(
        self, site: SiteConfig, pilot: PilotOptions, factory_name: str, glidein: GlideinBuilder | None = None
    ) -> None:
        if not site.cloud.image or not (site.cloud.instance_type or site.cloud.instance_types):
            raise ProviderError(
                f"{site.name}: an ec2 site needs cloud.image and cloud.instance_type (or cloud.instance_types)",
                site=site.name,
            )
        self.site = site.name
        self.config = site
        self.pilot = pilot
        self.factory = factory_name
        self.glidein = glidein
        self._ec2: Any = None

    # -- the client ------------------------------------------------------------------------
    def client(self) -> Any:
        """The boto3 EC2 client, made on first use (credentials: profile/file or environment)."""
        if self._ec2 is None:
            cloud = self.config.cloud
            core = botocore.session.Session(profile=cloud.profile)
            if cloud.credentials_file:
                core.set_config_variable("credentials_file", cloud.credentials_file)
            session = boto3.session.Session(botocore_session=core)
            self._ec2 = session.client(
                "ec2",
                region_name=cloud.region or "us-east-1",
                endpoint_url=cloud.endpoint_url,
                config=BotoConfig(
                    retries={"mode": "standard", "total_max_attempts": cloud.max_attempts},
                    connect_timeout=cloud.request_timeout,
                    read_timeout=cloud.request_timeout,
                    user_agent_extra="campus-factory",
                ),
            )
        return self._ec2

    def _error(self, what: str, exc: Exception) -> ProviderError:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return classify_error(self.site, what, str(err.get("Code", "")), str(err.get("Message", exc)), status)
        return classify_error(self.site, what, type(exc).__name__, str(exc))

    # -- submit ----------------------------------------------------------------------------
    def _params(self, submission: Submission, index: int, glidein: GlideinSpec | None = None) -> dict[str, Any]:
        cloud = self.config.cloud
        request = submission.pilots[index]
        tags = instance_tags(self.config, self.factory, submission, index, request)
        tags["Name"] = instance_name(submission, index)
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        data = user_data(self.config, self.pilot, self.factory, submission, index, glidein)
        if len(data.encode()) > USER_DATA_LIMIT:
            raise SubmitError(
                f"{self.site}: the pilot's user-data is {len(data.encode())} bytes, EC2 accepts {USER_DATA_LIMIT}; "
                "shorten pilot.extra_config or the site's slot attributes",
                site=self.site,
            )
        params: dict[str, Any] = {
            "ImageId": cloud.image,
            "InstanceType": type_of(self.config, request),
            "MinCount": 1,
            "MaxCount": 1,
            "UserData": data,
            "ClientToken": f"{submission.tag}-{index}"[:64],
            "InstanceInitiatedShutdownBehavior": "terminate",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list},
                {"ResourceType": "volume", "Tags": tag_list},
            ],
        }
        if cloud.key_name:
            params["KeyName"] = cloud.key_name
        if cloud.network:
            params["SubnetId"] = cloud.network
        if cloud.security_groups:
            params["SecurityGroupIds"] = list(cloud.security_groups)
        if cloud.spot:
            spot: dict[str, Any] = {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}
            if cloud.spot_max_price:
                spot["MaxPrice"] = cloud.spot_max_price
            params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
        return params

    def run_instance(self, params: Mapping[str, Any]) -> str:
        """One RunInstances call (blocking); returns the instance id."""
        reply = self.client().run_instances(**params)
        return str(reply["Instances"][0]["InstanceId"])

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        out: list[SubmittedPilot] = []
        glidein = await glidein_for(self.config, self.pilot, self.glidein, submission.pilots)
        for index, request in enumerate(submission.pilots):
            params = self._params(submission, index, glidein)
            try:
                instance_id = await asyncio.to_thread(self.run_instance, params)
            except (ClientError, BotoCoreError) as exc:
                error = self._error("submit", exc)
                if out:  # leave nothing half-submitted behind
                    await self.cancel([s.job_id for s in out], graceful=False)
                raise error from exc
            out.append(SubmittedPilot(request.pilot_id, instance_id))
        return out

    # -- instance types --------------------------------------------------------------------
    def read_types(self, names: Sequence[str]) -> dict[str, dict[str, object]]:
        """One DescribeInstanceTypes call (blocking) for ``names``: name -> unchecked shape."""
        reply = self.client().describe_instance_types(InstanceTypes=list(names))
        entries = reply.get("InstanceTypes", []) if isinstance(reply, Mapping) else []
        return {str(e.get("InstanceType")): ec2_shape(e) for e in entries if isinstance(e, Mapping)}

    async def instance_shapes(self) -> tuple[InstanceShape, ...]:
        """The shapes of ``cloud.instance_types`` (the cloud asked only for undeclared ones)."""
        names = [t.name for t in self.config.cloud.instance_types if not t.declared]
        try:
            read = await asyncio.to_thread(self.read_types, names) if names else {}
        except (ClientError, BotoCoreError) as exc:
            raise self._error("instance types", exc) from exc
        return instance_shapes(self.config, read)

    # -- observe ---------------------------------------------------------------------------
    def list_instances(self) -> list[dict[str, Any]]:
        """Every instance of this factory and site (one paginated DescribeInstances)."""
        filters = [
            {"Name": f"tag:{TAG_FACTORY}", "Values": [self.factory]},
            {"Name": f"tag:{TAG_SITE}", "Values": [self.site]},
        ]
        pages = self.client().get_paginator("describe_instances").paginate(Filters=filters)
        return [i for page in pages for r in page.get("Reservations", []) for i in r.get("Instances", [])]

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        try:
            instances = await asyncio.to_thread(self.list_instances)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("observe", exc) from exc
        found = {}
        stopped = []
        for inst in instances:
            state, native, reason = ec2_state(inst)
            found[str(inst["InstanceId"])] = status_from_tags(
                str(inst["InstanceId"]), state, native, _tags(inst), reason
            )
            if native.startswith("stopped"):
                stopped.append(str(inst["InstanceId"]))
        if stopped:  # a stopped pilot is no pilot: do not keep its disk around
            await self.cancel(stopped, graceful=False)
        statuses = {
            j: found[j] if j in found else status_from_tags(j, JobState.GONE, "", {}, "not listed") for j in job_ids
        }
        tagged = [s for s in found.values() if s.tag.startswith(tag_prefix)]
        return Observation(statuses=statuses, tagged=tagged)

    # -- cancel ----------------------------------------------------------------------------
    def _terminate(self, ids: list[str], graceful: bool) -> dict[str, str]:
        """Tag and terminate; returns {id: problem} for ids that failed (not-found ones are done)."""
        ec2 = self.client()
        try:
            ec2.create_tags(Resources=ids, Tags=[{"Key": TAG_LEAVE, "Value": "graceful" if graceful else "now"}])
            ec2.terminate_instances(InstanceIds=ids)
            return {}
        except ClientError as exc:
            if len(ids) == 1:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                return {} if code in _NOT_FOUND else {ids[0]: str(self._error("cancel", exc))}
        problems: dict[str, str] = {}
        for one in ids:  # some id is unknown or refused: one call each tells which
            problems.update(self._terminate([one], graceful))
        return problems

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        ids = [j for j in job_ids if re.fullmatch(r"i-[0-9a-zA-Z]+", j)]
        try:
            problems = await asyncio.to_thread(self._terminate, ids, graceful) if ids else {}
        except BotoCoreError as exc:
            problems = {j: str(self._error("cancel", exc)) for j in ids}
        return [
            CancelResult(j, j not in problems and j in ids, problems.get(j, "" if j in ids else "not an instance id"))
            for j in job_ids
        ]
