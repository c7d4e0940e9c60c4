"""API fixtures: a config and a ledger filled by hand (tests/ledger/scenario.py) with one recorded
cycle, an HTTP client, a live uvicorn server, and a browser (Debian's Chromium via Playwright).

The browser fixtures replace pytest-playwright's: its session-scoped ``playwright`` keeps an
event loop marked running in the main thread, which makes every later ``asyncio.run`` in the
session fail. Here Playwright lives only as long as the module that uses it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.conftest import free_port_range, service_unavailable
from tests.ledger.scenario import COSTS, FACTORY, UNTIL, build

from campus_factory.api import create_app
from campus_factory.config import Config, parse_config
from campus_factory.ledger import CycleRecord, Ledger
from campus_factory.planner.types import Cancel, GroupDecision, Placement, Plan, SitePlan

TOKEN = "s3cret-token-for-tests"
CHROMIUM = "/usr/bin/chromium"


def make_config(**api: Any) -> Config:
    return parse_config(
        {
            "factory": {"name": FACTORY},
            "api": api,
            "sites": [
                {"name": "alpha", "provider": "fake", "cost_per_core_hour": COSTS["alpha"], "slot": {"cpus": 4}},
                {"name": "beta", "provider": "fake", "cost_per_core_hour": COSTS["beta"], "slot": {"cpus": 2}},
            ],
        }
    )


def last_plan() -> Plan:
    return Plan(
        now=UNTIL,
        sites=(
            SitePlan(
                "alpha", 2, (), needed=3, supply=1, bound_by="max_queued", reasons=("2 job group(s) want 3 pilots",)
            ),
            SitePlan(
                "beta",
                0,
                (Cancel("b9", True, "idle for 15 min"),),
                needed=0,
                supply=0,
                bound_by=None,
                reasons=("no job group matches this site",),
            ),
        ),
        groups=(
            GroupDecision(
                "g-alice",
                12,
                "alpha",
                2,
                4,
                "fits alpha (4 jobs per pilot)",
                ("alpha",),
                (Placement("alpha", 8, 0, 2),),
            ),
            GroupDecision("g-dave", 2, None, 0, 0, "no site has 256000 MB of memory"),
        ),
        notes=(),
    )


def fill(ledger: Ledger) -> None:
    build(ledger)
    ledger.record_cycle(CycleRecord(FACTORY, UNTIL - 120, 0.8, False, 1, 0, 0, {"sites": [], "groups": []}))
    ledger.record_cycle(CycleRecord(FACTORY, UNTIL - 60, 1.7, False, 2, 1, 0, last_plan().to_dict()))


@pytest.fixture
def api_ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(f"sqlite:///{tmp_path}/api.sqlite")
    fill(led)
    try:
        yield led
    finally:
        led.close()


@pytest.fixture
def app_factory(api_ledger: Ledger) -> Callable[..., FastAPI]:
    def make(token: str | None = TOKEN, **api: Any) -> FastAPI:
        return create_app(make_config(**api), api_ledger, token=token, clock=lambda: UNTIL)

    return make


@pytest.fixture
def client(app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(app_factory()) as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


# -- a live server ------------------------------------------------------------------------------
@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port, in a thread; yields its base URL."""
    port = free_port_range(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


# -- the browser --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium, installed with apt-get when missing (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0:
            service_unavailable("Chromium", f"{CHROMIUM} is missing and installing it needs root")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                service_unavailable("Chromium", f"apt-get install chromium failed: {proc.stderr}")
    if shutil.which(CHROMIUM) is None:
        service_unavailable("Chromium", f"{CHROMIUM} is not executable")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Any]:
    """A headless Chromium driven by Playwright, for one test module."""
    from playwright.sync_api import Error, sync_playwright

    pw = sync_playwright().start()
    try:
        try:
            chromium = pw.chromium.launch(executable_path=chromium_executable)
        except Error as exc:
            service_unavailable("Chromium", str(exc))
        yield chromium
        chromium.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page; its waits (and ``expect``'s) allow a loaded machine 30 s instead of 5: they poll
    and return as soon as the condition holds."""
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(60_000)
    try:
        yield context.new_page()
    finally:
        context.close()
