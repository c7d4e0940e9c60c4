"""Kubernetes through the official client: one pod per pilot, in one namespace.

* **submit**: one ``create_namespaced_pod`` per pilot: ``restartPolicy: Never``, the walltime as
  ``activeDeadlineSeconds``, the slot as resource requests and limits, the payload command as the
  container command, and the tags of :mod:`._cloud` as labels (the pod name is derived from the
  submission tag). A quota refusal (403 "exceeded quota") is :class:`QuotaExceeded`, 429
  :class:`ThrottledError`; the pods already created for the submission are deleted.
* **observe**: one ``list_namespaced_pod`` with a label selector on factory and site. Pending is
  PENDING, Running RUNNING, Succeeded COMPLETED, Failed FAILED (walltime reached,
  ``DeadlineExceeded``, is COMPLETED; an eviction CANCELLED). Finished pods are deleted by the
  observe call that reports them.
* **cancel**: ``delete_namespaced_pod`` (grace period 0 unless graceful); deleted pods are
  remembered so that their end is reported CANCELLED/COMPLETED, not GONE.

Only the "command" payload runs in a pod (the image must hold it); a glidein in a pod is not
written. Tested against recorded API responses only (no API server runs in CI): scheduling,
watches, quotas beyond the recorded refusal and real authentication are untested.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ..config import PilotOptions, SiteConfig
from ..errors import NotSupportedError, ProviderError, UnsafeValueError
from ._cloud import TAG_FACTORY, TAG_SITE, Deleted, classify_error, instance_name, instance_tags, status_from_tags
from .base import CancelResult, JobState, Observation, Submission, SubmittedPilot, translate_state

__all__ = ["POD_PHASES", "KubernetesProvider", "pod_manifest", "pod_name"]

POD_PHASES: Mapping[str, JobState] = {
    "PENDING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "SUCCEEDED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "UNKNOWN": JobState.UNKNOWN,
}
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")


def pod_name(submission: Submission, index: int) -> str:
    """A DNS-1123 name from the instance name (lower case, '_' and '.' become '-')."""
    name = re.sub(r"[^a-z0-9-]", "-", instance_name(submission, index).lower())
    return name[:253].strip("-")


def pod_manifest(
    site: SiteConfig, pilot: PilotOptions, factory: str, submission: Submission, index: int
) -> dict[str, Any]:
    """The pod of one pilot, as the API takes it."""
    if pilot.payload != "command":
        raise NotSupportedError('the "glidein" payload is not supported in pods yet; use payload = "command"')
    if not site.cloud.image:
        raise ProviderError(f"{site.name}: a kubernetes site needs cloud.image (the container image)", site=site.name)
    request = submission.pilots[index]
    labels = instance_tags(site, factory, submission, index, request)
    for key, value in labels.items():
        if not _LABEL_VALUE.match(value):
            raise UnsafeValueError(f"{value!r} ({key}) is not a valid Kubernetes label value")
    resources = {"cpu": str(request.cpus), "memory": f"{request.memory_mb}Mi"}
    if request.gpus:
        resources["nvidia.com/gpu"] = str(request.gpus)
    env = {
        "CAMPUS_FACTORY_PILOT_ID": request.pilot_id,
        "CAMPUS_FACTORY_SITE": site.name,
        "CAMPUS_FACTORY_NAME": factory,
        "CAMPUS_FACTORY_TAG": submission.tag,
        "CAMPUS_FACTORY_IS_CLOUD_NODE": "true",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(submission, index), "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": max(1, int(request.walltime_s)),
            "terminationGracePeriodSeconds": 60,
            "containers": [
                {
                    "name": "pilot",
                    "image": site.cloud.image,
                    "command": list(pilot.command),
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "resources": {"requests": resources, "limits": resources},
                }
            ],
        },
    }


class KubernetesProvider:
    """Pilots as pods in one namespace."""

    def __init__(self, site: SiteConfig, pilot: PilotOptions, factory_name: str) -> None:
        self.site = site.name
        self.config = site
        self.pilot = pilot
        self.factory = factory_name
        self.namespace = site.cloud.namespace
        self._api: Any = None
        self._deleted = Deleted()  # what this process deleted: the listing forgets it

    def api(self) -> Any:
        """The CoreV1 API: kubeconfig file, else in-cluster config; endpoint_url overrides the host
        and a bearer token is read from the variable named by cloud.secret_env when set."""
        if self._api is None:
            cloud = self.config.cloud
            conf = k8s.Configuration()
            if cloud.credentials_file:
                k8s_config.load_kube_config(config_file=cloud.credentials_file, client_configuration=conf)  # type: ignore[no-untyped-call]
            elif not cloud.endpoint_url:
                k8s_config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
            if cloud.endpoint_url:
                conf.host = cloud.endpoint_url.rstrip("/")
            token = os.environ.get(cloud.secret_env)
            if token:
                conf.api_key = {"authorization": f"Bearer {token}"}
            conf.retries = cloud.max_attempts - 1
            self._api = k8s.CoreV1Api(k8s.ApiClient(conf))
        return self._api

    def _error(self, what: str, exc: Exception) -> ProviderError:
        if isinstance(exc, ApiException):
            return classify_error(self.site, what, f"HTTP {exc.status} {exc.reason}", str(exc.body or ""), exc.status)
        return classify_error(self.site, what, type(exc).__name__, str(exc))

    def _timeout(self) -> float:
        return self.config.cloud.request_timeout

    # -- submit ----------------------------------------------------------------------------
    def create_pod(self, submission: Submission, index: int) -> str:
        body = pod_manifest(self.config, self.pilot, self.factory, submission, index)
        self.api().create_namespaced_pod(self.namespace, body, _request_timeout=self._timeout())
        return str(body["metadata"]["name"])

    async def submit(self, submission: Submission) -> list[SubmittedPilot]:
        out: list[SubmittedPilot] = []
        for index, request in enumerate(submission.pilots):
            try:
                name = await asyncio.to_thread(self.create_pod, submission, index)
            except (ApiException, HTTPError) as exc:
                error = self._error("submit", exc)
                if out:
                    await self.cancel([s.job_id for s in out], graceful=False)
                raise error from exc
            out.append(SubmittedPilot(request.pilot_id, name))
        return out

    # -- observe ---------------------------------------------------------------------------
    def list_pods(self) -> list[Any]:
        selector = f"{TAG_FACTORY}={self.factory},{TAG_SITE}={self.site}"
        reply = self.api().list_namespaced_pod(
            self.namespace, label_selector=selector, _request_timeout=self._timeout()
        )
        return list(reply.items or [])

    def _state(self, pod: Any) -> tuple[JobState, str, str]:
        status = pod.status
        phase = str(getattr(status, "phase", None) or "Unknown")
        reason = str(getattr(status, "reason", None) or "")
        state = translate_state(phase, POD_PHASES, "kubernetes")
        if state is JobState.FAILED and reason == "DeadlineExceeded":
            state = JobState.COMPLETED
        elif state is JobState.FAILED and reason in ("Evicted", "Preempting", "Shutdown", "NodeShutdown"):
            state = JobState.CANCELLED
        if pod.metadata.deletion_timestamp is not None and not state.finished:
            graceful = self._deleted.graceful(str(pod.metadata.name)) or False
            state, reason = (JobState.COMPLETED if graceful else JobState.CANCELLED), reason or "being deleted"
        return state, f"{phase} ({reason})" if reason else phase, reason

    async def observe(self, job_ids: Sequence[str], tag_prefix: str) -> Observation:
        try:
            pods = await asyncio.to_thread(self.list_pods)
        except (ApiException, HTTPError) as exc:
            raise self._error("observe", exc) from exc
        found = {}
        reap = []
        for pod in pods:
            name = str(pod.metadata.name)
            state, native, reason = self._state(pod)
            found[name] = status_from_tags(name, state, native, dict(pod.metadata.labels or {}), reason)
            if state.finished and pod.metadata.deletion_timestamp is None:
                reap.append(name)
        if reap:
            await self.cancel(reap, graceful=True)
        return self._deleted.observation(job_ids, found, tag_prefix, "Deleted")

    # -- cancel ----------------------------------------------------------------------------
    def _delete(self, names: Sequence[str], graceful: bool) -> dict[str, str]:
        problems = {}
        for name in names:
            try:
                self.api().delete_namespaced_pod(
                    name, self.namespace, grace_period_seconds=None if graceful else 0, _request_timeout=self._timeout()
                )
            except ApiException as exc:
                if exc.status != 404:
                    problems[name] = str(self._error("cancel", exc))
            except HTTPError as exc:
                problems[name] = str(self._error("cancel", exc))
        return problems

    async def cancel(self, job_ids: Sequence[str], *, graceful: bool = True) -> list[CancelResult]:
        problems = await asyncio.to_thread(self._delete, list(job_ids), graceful)
        return self._deleted.record(job_ids, problems, graceful)
