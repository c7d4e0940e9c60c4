"""A moto EC2 server with a simulated boot delay and injected faults, in one process.

Run: ``python moto_server.py PORT`` (listens on 127.0.0.1 only). Control plane on the same port:

* ``POST /_fault {"action": "RunInstances", "code": "InstanceLimitExceeded", "status": 400,
  "message": "...", "times": 1}``: the next ``times`` calls of ``action`` fail (-1: always);
* ``POST /_fault/clear``; ``POST /_config {"boot_seconds": 5}``; ``GET /_stats``: calls per action;
* ``POST /_poweroff {"instance_id": "i-..."}``: the guest OS powered off, as real EC2 reports it:
  terminated (``InstanceInitiatedShutdownBehavior=terminate``) or stopped (``stop``), with the
  state reason ``Client.InstanceInitiatedShutdown``.

Adapted from shared/lab/fake_ec2.py. moto's XML namespace lacks the trailing slash that real EC2
and Apache Libcloud use; the wrapper adds it.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
import urllib.parse
from collections import Counter
from typing import Any

from moto.ec2.models import ec2_backends
from moto.ec2.models import instances as _inst
from moto.ec2.models.instances import StateReason
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

CONFIG: dict[str, float] = {"boot_seconds": 0.0}
FAULTS: list[dict[str, Any]] = []
CALLS: Counter[str] = Counter()
LOCK = threading.Lock()


class TimedState(_inst.InstanceState):  # type: ignore[misc]
    """Reports 'pending' until ``boot_at``, then the real state."""

    def __init__(self, boot_at: float) -> None:
        self._n, self._c, self.boot_at = "running", 16, boot_at

    def _booting(self) -> bool:
        return self._n == "running" and time.time() < self.boot_at

    name = property(lambda s: "pending" if s._booting() else s._n, lambda s, v: setattr(s, "_n", v))
    code = property(lambda s: 0 if s._booting() else s._c, lambda s, v: setattr(s, "_c", v))


_orig_init = _inst.Instance.__init__


def _init(self: Any, *a: Any, **kw: Any) -> None:
    _orig_init(self, *a, **kw)
    self._state = TimedState(time.time() + CONFIG["boot_seconds"])


_inst.Instance.__init__ = _init


def _poweroff(instance_id: str) -> None:
    for regions in ec2_backends.values():
        for backend in regions.values():
            try:
                instance = backend.get_instance(instance_id)
            except Exception:
                continue
            if instance.instance_initiated_shutdown_behavior == "terminate":
                instance.terminate()
            else:
                instance.stop()
            instance.state_reason = StateReason(
                "Client.InstanceInitiatedShutdown: Instance initiated shutdown", "Client.InstanceInitiatedShutdown"
            )
            return
    raise KeyError(instance_id)


ERR = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
    "<Message>{msg}</Message></Error></Errors><RequestID>fault-injected</RequestID></Response>"
)


class FaultMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    def _control(self, environ: dict[str, Any], start_response: Any, path: str) -> list[bytes]:
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(n) or b"{}")
        with LOCK:
            if path == "/_fault":
                FAULTS.append({"times": 1, "status": 400, "message": "injected", **body})
            elif path == "/_fault/clear":
                FAULTS.clear()
            elif path == "/_config":
                CONFIG.update(body)
            elif path == "/_poweroff":
                _poweroff(str(body["instance_id"]))
            state = {"faults": FAULTS, "config": CONFIG, "calls": dict(CALLS)}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(state).encode()]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_fault") or path in ("/_config", "/_stats", "/_poweroff"):
            return self._control(environ, start_response, path)
        n = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(n) if n else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        qs = raw.decode(errors="ignore") + "&" + environ.get("QUERY_STRING", "")  # boto3 POSTs, libcloud GETs
        action = urllib.parse.parse_qs(qs).get("Action", [None])[0]
        with LOCK:
            CALLS[str(action)] += 1
            fault = next((f for f in FAULTS if f["action"] == action and f["times"] != 0), None)
            if fault:
                fault["times"] -= 1
        if fault:
            start_response(f"{fault['status']} Error", [("Content-Type", "text/xml")])
            return [ERR.format(code=fault["code"], msg=fault["message"]).encode()]
        captured: dict[str, Any] = {}

        def sr(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["s"], captured["h"] = status, headers

        body = b"".join(self.app(environ, sr))
        body = body.replace(
            b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"', b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"'
        )
        headers = [(k, v) for k, v in captured["h"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(captured["s"], headers)
        return [body]


if __name__ == "__main__":
    port = int(sys.argv[1])
    app = FaultMiddleware(DomainDispatcherApplication(create_backend_app))
    srv = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"moto ec2 on {port}", flush=True)
    srv.serve_forever()
