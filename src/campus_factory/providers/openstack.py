"""OpenStack through openstacksdk: one server per pilot.

* **submit**: one ``create_server`` per pilot with the cloud-init user-data and every tag of
  :mod:`._cloud` as server metadata (set in the create call itself), named after the submission
  tag. When one call of a submission fails, the servers already created for it are deleted and the
  error is raised, classified (an HTTP 403/413 "Quota exceeded" becomes :class:`QuotaExceeded`,
  429 or "rate limit" :class:`ThrottledError`).
* **observe**: one ``servers/detail`` listing filtered on the factory's name prefix (Nova filters
  names by regular expression, mimic by substring: a plain prefix works for both), then on the
  factory and site metadata. BUILD is PENDING, ACTIVE RUNNING, ERROR FAILED ("No valid host" is
  a capacity problem the loop sees as a failed pilot); a server that shut itself off (the pilot's
  payload ended) is COMPLETED. Servers in ERROR, SHUTOFF, SUSPENDED or SHELVED hold quota: they
  are deleted by the same observe call that reports them.
* **cancel**: ``delete_server`` per server (unknown ones count as done). Nova forgets deleted
  servers, so the provider remembers what it deleted and reports those CANCELLED (COMPLETED after
  a graceful leave); after a restart such a server is GONE.

With ``cloud.instance_types``, one flavor listing (``flavors/detail``) gives the shapes
(``vcpus``, ``ram``, ``disk``) of the flavors the config does not declare, matched by name or id;
each pilot is created with the flavor the planner chose for it.

Credentials come from ``clouds.yaml`` (``cloud.credentials_file``, cloud name ``cloud.profile``)
or the ``OS_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from typing import Any

import openstack
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions as os_exceptions
from openstack.config import loader

from ..config import PilotOptions, SiteConfig
from ..domain import InstanceShape
from ..errors import ProviderError
from ..pilot.glidein import GlideinSpec
from ..pilot.payload import GlideinBuilder, glidein_for
from ._cloud import (
    TAG_FACTORY,
    TAG_SITE,
    Deleted,
    classify_error,
    instance_name,
    instance_shapes,
    instance_tags,
    status_from_tags,
    type_of,
    user_data,
)
from .base import CancelResult, JobState, Observation, Submission, SubmittedPilot, translate_state

__all__ = ["NOVA_STATES", "OpenStackProvider"]

NOVA_STATES: Mapping[str, JobState] = {
    "BUILD": JobState.PENDING,
    "REBUILD": JobState.PENDING,
    "ACTIVE": JobState.RUNNING,
    "REBOOT": JobState.RUNNING,
    "HARD_REBOOT": JobState.RUNNING,
    "PASSWORD": JobState.RUNNING,
    "RESIZE": JobState.RUNNING,
    "VERIFY_RESIZE": JobState.RUNNING,
    "REVERT_RESIZE": JobState.RUNNING,
    "MIGRATING": JobState.RUNNING,
    "RESCUE": JobState.RUNNING,
    "SHUTOFF": JobState.COMPLETED,
    "STOPPED": JobState.COMPLETED,
    "ERROR": JobState.FAILED,
    "SUSPENDED": JobState.CANCELLED,
    "PAUSED": JobState.CANCELLED,
    "SHELVED": JobState.CANCELLED,
    "SHELVED_OFFLOADED": JobState.CANCELLED,
    "SOFT_DELETED": JobState.CANCELLED,
    "DELETED": JobState.CANCELLED,
    "UNKNOWN": JobState.UNKNOWN,
}
_REAP = {"SHUTOFF", "STOPPED", "ERROR", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED"}
_ERRORS: tuple[type[Exception], ...] = (os_exceptions.SDKException, ks_exceptions.ClientException)


class OpenStackProvider:
    """Pilots as Nova servers of one site (cloud, region, image, flavor, network)."""

    def __init__(
        self, site: SiteConfig, pilot: PilotOptions, factory_name: str, glidein: GlideinBuilder | None = None
    ) -> None:
        if not site.cloud.image or not (site.cloud.instance_type or site.cloud.instance_types):
            raise ProviderError(
                f"{site.name}: an openstack site needs cloud.image and cloud.instance_type (the flavor) "
                "or cloud.instance_types",
                site=site.name,
            )
        self.site = site.name
        self.config = site
        self.pilot = pilot
        self.factory = factory_name
        self.glidein = glidein
        self._conn: Any = None
        self._flavors: dict[str, str] = {}  # flavor name (or id) -> id
        self._deleted = Deleted()  # what this process deleted: the listing forgets it

    # -- the connection --------------------------------------------------------------------
    def connection(self) -> Any:
        """The openstacksdk connection, made on first use."""
        if self._conn is None:
            cloud = self.config.cloud
            files = [cloud.credentials_file] if cloud.credentials_file else None
            region = loader.OpenStackConfig(config_files=files).get_one(
                cloud=cloud.profile,
                region_name=cloud.region,
                api_timeout=cloud.request_timeout,
                connect_retries=cloud.max_attempts - 1,
            )
            self._conn = openstack.connection.Connection(config=region)
        return self._conn

    def _error(self, what: str, exc: Exception) -> ProviderError:
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        details = getattr(exc, "details", None) or str(exc)
        return classify_error(self.site, what, f"HTTP {status}" if status else type(exc).__name__, str(details), status)

    def flavor_id(self, wanted: str | None = None) -> str:
        """The id of flavor ``wanted`` (default: cloud.instance_type); a name is looked up once."""
        wanted = wanted or str(self.config.cloud.instance_type)
        if wanted not in self._flavors:
            try:
                self._flavors[wanted] = str(self.connection().compute.find_flavor(wanted, ignore_missing=False).id)
            except os_exceptions.NotFoundException:
                self._flavors[wanted] = wanted  # not listed: maybe an id the listing hides
        return self._flavors[wanted]

    def read_flavors(self) -> dict[str, dict[str, object]]:
        """One flavor listing (blocking): name and id -> unchecked shape."""
        out: dict[str, dict[str, object]] = {}
        for f in self.connection().compute.flavors(details=True):
            disk = getattr(f, "disk", None)
            shape: dict[str, object] = {
                "cpus": getattr(f, "vcpus", None),
                "memory_mb": getattr(f, "ram", None),
                "disk_mb": disk * 1000 if isinstance(disk, int) and not isinstance(disk, bool) else disk,
                "gpus": 0,
                "ref": str(f.id),
            }
            out.setdefault(str(f.id), shape)
            out[str(getattr(f, "name", f.id))] = shape  # a name wins over an id of the same text
        return out

    async def instance_shapes(self) -> tuple[InstanceShape, ...]:
        """The shapes of ``cloud.instance_types`` (the flavors are listed only for undeclared ones)."""
        listed = not all(t.declared for t in self.config.cloud.instance_types)
        try:
            read = await asyncio.to_thread(self.read_flavors) if listed else {}
        except _ERRORS as exc:
            raise self._error("instance types", exc) from exc
        shapes = instance_shapes(self.config, read)
        self._flavors.update({s.name: s.ref for s in shapes if s.name in read})  # no lookup at submit
        return shapes

    # -- submit ----------------------------------------------------------------------------
    def create_server(self, submission: Submission, index: int, glidein: GlideinSpec | None = None) -> str:
        """One create call (blocking); returns the server id."""
        cloud = self.config.cloud
        request = submission.pilots[index]
        text = user_data(self.config, self.pilot, self.factory, submission, index, glidein)
        args: dict[str, Any] = {
            "name": instance_name(submission, index),
            "image_id": cloud.image,
            "flavor_id": self.flavor_id(type_of(self.config, request)),
            "user_data": base64.b64encode(text.encode()).decode(),
            "metadata": instance_tags(self.config, self.factory, submission, index, request),
        }
        if cloud.key_name:
            args["key_name"] = cloud.key_name
        if cloud.network:
            args["networks"] = [{"uuid": cloud.network}]
        if cloud.security_groups:
            args["security_groups"] = [{"name": g} for g in cloud.security_groups]
        return str(self.connection().compute.create_server(**args).id)

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        out: list[SubmittedPilot] = []
        glidein = await glidein_for(self.config, self.pilot, self.glidein, submission.pilots)
        for index, request in enumerate(submission.pilots):
            try:
                server_id = await asyncio.to_thread(self.create_server, submission, index, glidein)
            except _ERRORS as exc:
                error = self._error("submit", exc)
                if out:  # leave nothing half-submitted behind
                    await self.cancel([s.job_id for s in out], graceful=False)
                raise error from exc
            out.append(SubmittedPilot(request.pilot_id, server_id))
        return out

    # -- observe ---------------------------------------------------------------------------
    def list_servers(self) -> list[Any]:
        """Every server of this factory and site (one listing)."""
        servers = self.connection().compute.servers(details=True, name=f"cf-{self.factory}-")
        return [
            s
            for s in servers
            if (s.metadata or {}).get(TAG_FACTORY) == self.factory and (s.metadata or {}).get(TAG_SITE) == self.site
        ]

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        try:
            servers = await asyncio.to_thread(self.list_servers)
        except _ERRORS as exc:
            raise self._error("observe", exc) from exc
        found = {}
        reap = []
        for s in servers:
            native = str(s.status or "UNKNOWN").upper()
            state = translate_state(native, NOVA_STATES, "openstack")
            fault = getattr(s, "fault", None) or {}
            reason = str(fault.get("message", "")) if isinstance(fault, dict) else ""
            found[str(s.id)] = status_from_tags(str(s.id), state, native, dict(s.metadata or {}), reason)
            if native in _REAP:
                reap.append(str(s.id))
        if reap:  # a finished server still holds quota
            await self.cancel(reap, graceful=True)
        return self._deleted.observation(job_ids, found, tag_prefix, "DELETED")

    # -- cancel ----------------------------------------------------------------------------
    def _delete(self, ids: Sequence[str]) -> dict[str, str]:
        problems = {}
        compute = self.connection().compute
        for server_id in ids:
            try:
                compute.delete_server(server_id, ignore_missing=True)
            except _ERRORS as exc:
                problems[server_id] = str(self._error("cancel", exc))
        return problems

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        problems = await asyncio.to_thread(self._delete, list(job_ids))
        return self._deleted.record(job_ids, problems, graceful)
