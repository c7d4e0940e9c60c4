"""Any other cloud through Apache Libcloud's compute drivers (the seed's DeltaCloud role).

The driver is ``cloud.driver`` (``ec2``, ``openstack``, ``gce``, ...), built with the access key
and secret read from the environment variables named by ``cloud.key_env``/``cloud.secret_env``,
the region, the host/port/scheme of ``cloud.endpoint_url``, and ``cloud.driver_options``.

* **submit**: one ``create_node`` per pilot, named after the submission tag, with the cloud-init
  user-data (``ex_userdata``) and the tags of :mod:`._cloud` (``ex_metadata``, which the EC2 and
  OpenStack drivers send in the create call). The EC2 driver also gets a client token and
  terminate-on-shutdown. On a failure the nodes already created for the submission are destroyed.
* **observe**: one ``list_nodes`` call; nodes are ours when their tags (``extra["tags"]`` or
  ``extra["metadata"]``) name this factory and site. Stopped, suspended or errored nodes are
  destroyed by the observe call that reports them.
* **cancel**: ``destroy_node``; what this process destroyed is remembered, so a terminated node is
  reported COMPLETED after a graceful leave and CANCELLED otherwise.

Tested against the moto EC2 server through libcloud's EC2 driver only; other drivers take other
``ex_`` arguments for user-data and tags and are untested.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from libcloud.compute.base import Node, NodeImage, NodeSize
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState

from ..config import PilotOptions, SiteConfig
from ..errors import ProviderError
from ..pilot.glidein import GlideinSpec
from ..pilot.payload import GlideinBuilder, glidein_for
from ._cloud import (
    TAG_FACTORY,
    TAG_SITE,
    Deleted,
    classify_error,
    instance_name,
    instance_tags,
    status_from_tags,
    user_data,
)
from .base import CancelResult, JobState, Observation, Submission, SubmittedPilot, translate_state

__all__ = ["LIBCLOUD_STATES", "LibcloudProvider"]

LIBCLOUD_STATES: Mapping[str, JobState] = {
    "PENDING": JobState.PENDING,
    "STARTING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "NORMAL": JobState.RUNNING,
    "REBOOTING": JobState.RUNNING,
    "RECONFIGURING": JobState.RUNNING,
    "MIGRATING": JobState.RUNNING,
    "UPDATING": JobState.RUNNING,
    "STOPPING": JobState.COMPLETED,
    "STOPPED": JobState.COMPLETED,
    "SUSPENDED": JobState.CANCELLED,
    "PAUSED": JobState.CANCELLED,
    "TERMINATED": JobState.CANCELLED,
    "ERROR": JobState.FAILED,
    "UNKNOWN": JobState.UNKNOWN,
}
_REAP = {"STOPPED", "SUSPENDED", "PAUSED", "ERROR"}


def _tags(node: Node) -> dict[str, str]:
    extra = node.extra or {}
    tags = extra.get("tags") or extra.get("metadata") or extra.get("labels") or {}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}


class LibcloudProvider:
    """Pilots as nodes of any Apache Libcloud compute driver."""

    def __init__(
        self, site: SiteConfig, pilot: PilotOptions, factory_name: str, glidein: GlideinBuilder | None = None
    ) -> None:
        cloud = site.cloud
        if not cloud.driver or not cloud.image or not cloud.instance_type:
            raise ProviderError(
                f"{site.name}: a libcloud site needs cloud.driver, cloud.image and cloud.instance_type", site=site.name
            )
        self.site = site.name
        self.config = site
        self.pilot = pilot
        self.factory = factory_name
        self.glidein = glidein
        self.driver_name: str = cloud.driver
        self.image: str = cloud.image
        self.size: str = cloud.instance_type
        self._driver: Any = None
        self._deleted = Deleted()  # what this process deleted: the listing forgets it

    def driver(self) -> Any:
        """The libcloud driver, made on first use (credentials from the environment)."""
        if self._driver is None:
            cloud = self.config.cloud
            key, secret = os.environ.get(cloud.key_env), os.environ.get(cloud.secret_env)
            if not key:
                raise ProviderError(
                    f"{self.site}: ${cloud.key_env} is not set (the cloud's access key)", site=self.site
                )
            kwargs: dict[str, Any] = dict(cloud.driver_options)
            if cloud.region:
                kwargs["region"] = cloud.region
            if cloud.endpoint_url:
                url = urlsplit(cloud.endpoint_url)
                kwargs.update(host=url.hostname, secure=url.scheme == "https")
                if url.port:
                    kwargs["port"] = url.port
            cls = get_driver(self.driver_name)
            self._driver = cls(key, secret, **kwargs) if secret is not None else cls(key, **kwargs)
            self._driver.connection.timeout = int(cloud.request_timeout)
        return self._driver

    def _error(self, what: str, exc: Exception) -> ProviderError:
        status = getattr(exc, "code", None) or getattr(exc, "http_code", None)
        return classify_error(
            self.site, what, type(exc).__name__, str(exc), status if isinstance(status, int) else None
        )

    # -- submit ----------------------------------------------------------------------------
    def create_node(self, submission: Submission, index: int, glidein: GlideinSpec | None = None) -> str:
        """One create_node call (blocking); returns the node id."""
        cloud = self.config.cloud
        driver = self.driver()
        request = submission.pilots[index]
        kwargs: dict[str, Any] = {
            "name": instance_name(submission, index),
            "size": NodeSize(self.size, self.size, 0, 0, 0, 0, driver),
            "image": NodeImage(self.image, self.image, driver),
            "ex_userdata": user_data(self.config, self.pilot, self.factory, submission, index, glidein),
            "ex_metadata": instance_tags(self.config, self.factory, submission, index, request),
        }
        if cloud.key_name:
            kwargs["ex_keyname"] = cloud.key_name
        if cloud.driver == "ec2":
            kwargs["ex_clienttoken"] = f"{submission.tag}-{index}"[:64]
            kwargs["ex_terminate_on_shutdown"] = True
            if cloud.security_groups:
                kwargs["ex_security_group_ids"] = list(cloud.security_groups)
            if cloud.spot:
                kwargs["ex_spot"] = True
                if cloud.spot_max_price:
                    kwargs["ex_spot_max_price"] = float(cloud.spot_max_price)
        return str(driver.create_node(**kwargs).id)

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        out: list[SubmittedPilot] = []
        glidein = await glidein_for(self.config, self.pilot, self.glidein, submission.pilots)
        for index, request in enumerate(submission.pilots):
            try:
                node_id = await asyncio.to_thread(self.create_node, submission, index, glidein)
            except Exception as exc:  # libcloud raises plain Exception for API errors
                error = self._error("submit", exc)
                if out:
                    await self.cancel([s.job_id for s in out], graceful=False)
                raise error from exc
            out.append(SubmittedPilot(request.pilot_id, node_id))
        return out

    # -- observe ---------------------------------------------------------------------------
    def list_nodes(self) -> list[Node]:
        """Every node of this factory and site (one list_nodes call)."""
        nodes = self.driver().list_nodes()
        return [n for n in nodes if _tags(n).get(TAG_FACTORY) == self.factory and _tags(n).get(TAG_SITE) == self.site]

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        try:
            nodes = await asyncio.to_thread(self.list_nodes)
        except Exception as exc:
            raise self._error("observe", exc) from exc
        found = {}
        reap = []
        for node in nodes:
            native = str(node.state).upper()
            state = translate_state(native, LIBCLOUD_STATES, "libcloud")
            if native == "TERMINATED" and self._deleted.graceful(str(node.id)):
                state = JobState.COMPLETED
            found[str(node.id)] = status_from_tags(str(node.id), state, native, _tags(node))
            if native in _REAP:
                reap.append(str(node.id))
        if reap:
            await self.cancel(reap, graceful=True)
        return self._deleted.observation(job_ids, found, tag_prefix, "DESTROYED")

    # -- cancel ----------------------------------------------------------------------------
    def _destroy(self, ids: Sequence[str]) -> dict[str, str]:
        driver = self.driver()
        problems = {}
        for node_id in ids:
            try:
                driver.destroy_node(Node(node_id, node_id, NodeState.UNKNOWN, [], [], driver))
            except Exception as exc:
                text = str(exc)
                if "NotFound" not in text and "not found" not in text.lower():
                    problems[node_id] = str(self._error("cancel", exc))
        return problems

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        problems = await asyncio.to_thread(self._destroy, list(job_ids))
        return self._deleted.record(job_ids, problems, graceful)
