"""The Kubernetes provider against recorded API responses (no API server can run here).

A tiny HTTP stub on 127.0.0.1 replays the shapes a v1.29 API server returns for pod create,
list (with a label selector), delete, a ResourceQuota refusal, throttling and NotFound, and keeps
the pods it was given so that list answers follow creates and deletes. Untested: real
scheduling, watches, authentication, admission webhooks, other quota kinds.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from campus_factory.config import parse_config
from campus_factory.domain import PilotRequest
from campus_factory.errors import ConfigError, NotSupportedError, QuotaExceeded, ThrottledError
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.kubernetes import KubernetesProvider, pod_manifest

NS = "pilots"
QUOTA = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'pods "{name}" is forbidden: exceeded quota: compute-resources, requested: limits.cpu=1, '
    "used: limits.cpu=4, limited: limits.cpu=4",
    "reason": "Forbidden",
    "details": {"name": "{name}", "kind": "pods"},
    "code": 403,
}
THROTTLED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Too many requests, please try again later.",
    "reason": "TooManyRequests",
    "details": {"retryAfterSeconds": 1},
    "code": 429,
}
NOT_FOUND = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'pods "{name}" not found',
    "reason": "NotFound",
    "details": {"name": "{name}", "kind": "pods"},
    "code": 404,
}


class Stub:
    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.fail: list[tuple[str, dict[str, Any]]] = []  # (method, Status body) served once each
        self.requests: list[tuple[str, str]] = []

    def status(self, body: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
        text = json.dumps(body).replace("{name}", name)
        return int(body["code"]), json.loads(text)

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        base = f"/api/v1/namespaces/{NS}/pods"
        name = path[len(base) + 1 :] if path.startswith(base + "/") else ""
        for i, (m, failure) in enumerate(self.fail):
            if m == method:
                del self.fail[i]
                return self.status(failure, name or body.get("metadata", {}).get("name", ""))
        if method == "POST" and path == base:
            pod = dict(body)
            meta = pod["metadata"]
            meta.update(namespace=NS, uid=str(uuid.uuid4()), creationTimestamp="2026-11-22T10:00:00Z")
            pod["status"] = {"phase": "Pending", "qosClass": "Guaranteed"}
            self.pods[meta["name"]] = pod
            return 201, pod
        if method == "GET" and path == base:
            wanted = dict(kv.split("=", 1) for kv in query.get("labelSelector", [""])[0].split(",") if kv)
            items = [
                p for p in self.pods.values() if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"}, "items": items}
        if method == "DELETE" and name:
            pod = self.pods.pop(name, None)
            if pod is None:
                return self.status(NOT_FOUND, name)
            pod["metadata"]["deletionTimestamp"] = "2026-11-22T10:05:00Z"
            return 200, pod
        return 404, {"kind": "Status", "code": 404, "message": "no route"}


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(n)) if n else {}
            code, reply = state.handle(self.command, url.path, parse_qs(url.query), body)
            data = json.dumps(reply).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def provider(url: str, **pilot: Any) -> KubernetesProvider:
    cfg = parse_config(
        {
            "pilot": {"command": ["sleep", "600"], **pilot},
            "sites": [
                {
                    "name": "k8s",
                    "provider": "kubernetes",
                    "slot": {"cpus": 1, "memory_mb": 512, "gpus": 1},
                    "cloud": {"endpoint_url": url, "namespace": NS, "image": "busybox:1.36", "max_attempts": 1},
                }
            ],
        }
    )
    return KubernetesProvider(cfg.sites[0], cfg.pilot, "Campus_1")


def submission(n: int) -> Submission:
    sub = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"k8s-{uuid.uuid4().hex[:10]}", 1, 512, 0, 1, 7200.0) for _ in range(n))
    return Submission(sub, f"cf-Campus_1-{sub}", pilots)


def test_pod_manifest() -> None:
    p = provider("http://127.0.0.1:1")
    sub = submission(2)
    pod = pod_manifest(p.config, p.pilot, "Campus_1", sub, 1)
    assert pod["metadata"]["name"] == f"cf-campus-1-{sub.submission_id}-p1"
    assert pod["metadata"]["labels"]["cf-tag"] == sub.tag and pod["metadata"]["labels"]["cf-index"] == "1"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 7200
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "1", "memory": "512Mi", "nvidia.com/gpu": "1"}
    assert {"name": "CAMPUS_FACTORY_IS_CLOUD_NODE", "value": "true"} in spec["containers"][0]["env"]
    with pytest.raises(ConfigError, match='payload = "command"'):  # refused when the config is read
        provider("http://127.0.0.1:1", payload="glidein")
    with pytest.raises(NotSupportedError):  # and by the provider, should options be built otherwise
        pod_manifest(p.config, p.pilot.model_copy(update={"payload": "glidein"}), "Campus_1", sub, 0)


def test_pods_are_created_listed_reaped_and_deleted(stub: tuple[Stub, str]) -> None:
    state, url = stub
    p = provider(url)
    sub = submission(2)
    names = [s.job_id for s in asyncio.run(p.submit(sub))]
    obs = asyncio.run(p.observe(names, "cf-Campus_1-"))
    assert {s.state for s in obs.statuses.values()} == {JobState.PENDING}
    assert sorted((s.tag, s.array_index) for s in obs.tagged) == [(sub.tag, 0), (sub.tag, 1)]
    state.pods[names[0]]["status"] = {"phase": "Running"}
    state.pods[names[1]]["status"] = {"phase": "Failed", "reason": "DeadlineExceeded"}
    obs = asyncio.run(p.observe(names, "cf-Campus_1-"))
    assert obs.statuses[names[0]].state is JobState.RUNNING
    assert obs.statuses[names[1]].state is JobState.COMPLETED  # walltime reached; and reaped
    assert list(state.pods) == [names[0]]
    assert all(r.ok for r in asyncio.run(p.cancel([names[0], "cf-unknown"], graceful=False)))
    obs = asyncio.run(p.observe(names, "cf-Campus_1-"))
    assert obs.statuses[names[0]].state is JobState.CANCELLED
    assert obs.statuses[names[1]].state is JobState.COMPLETED
    assert state.pods == {}


def test_quota_and_throttling(stub: tuple[Stub, str]) -> None:
    state, url = stub
    p = provider(url)
    state.fail.append(("POST", QUOTA))
    with pytest.raises(QuotaExceeded, match="quota"):
        asyncio.run(p.submit(submission(1)))
    state.fail.append(("GET", THROTTLED))
    with pytest.raises(ThrottledError, match="throttled"):
        asyncio.run(p.observe([], "cf-Campus_1-"))
    # a refusal of the second pod deletes the first
    sub = submission(2)
    real = p.create_pod

    def second_refused(submission: Submission, index: int) -> str:
        if index == 1:
            state.fail.append(("POST", QUOTA))
        return real(submission, index)

    p.create_pod = second_refused  # type: ignore[method-assign]
    with pytest.raises(QuotaExceeded):
        asyncio.run(p.submit(sub))
    assert state.pods == {}
