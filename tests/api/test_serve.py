"""`campus-factory api serve` as a real process on 127.0.0.1: it serves the API and the page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.api.conftest import TOKEN, fill
from tests.conftest import free_port_range

from campus_factory.ledger import Ledger


def test_api_serve_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    ledger = Ledger.open(url)
    fill(ledger)
    ledger.close()
    (tmp_path / "token").write_text(TOKEN + "\n")
    port = free_port_range(1)
    config = tmp_path / "campus.toml"
    config.write_text(
        f"""
[factory]
name = "campus"
ledger_url = "{url}"
[api]
port = {port}
token_file = "{tmp_path}/token"
[logging]
format = "json"
[[sites]]
name = "alpha"
provider = "fake"
"""
    )
    cmd = [sys.executable, "-m", "campus_factory.cli.main", "-c", str(config), "api", "serve"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a second or two when idle
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "api serve did not answer"
            time.sleep(0.1)
        assert [s["name"] for s in httpx.get(f"{base}/api/v1/sites").json()] == ["alpha"]
        assert httpx.get(f"{base}/").text.startswith("<!doctype html>")
        assert httpx.post(f"{base}/api/v1/sites/alpha/pause").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{base}/api/v1/sites/alpha/pause", headers=auth).json()["paused"] is True
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -15), err  # uvicorn re-raises SIGTERM once it has shut down cleanly
    assert "Application shutdown complete" in err
    assert '"msg": "API and dashboard on http://127.0.0.1:' in err  # JSON log lines
    assert TOKEN not in out + err
