"""The FastAPI application: REST API under ``/api/v1``, ``/metrics``, and the dashboard at ``/``.

Reads come from the ledger. Mutating actions write operator controls into the ledger
(``ledger.controls``) that the loop applies at its next cycle; they need the bearer token.
Endpoints are plain ``def`` functions: FastAPI runs them in its thread pool, so ledger queries
never block the event loop. The OpenAPI document is at ``/openapi.json`` (no Swagger UI: it would
load assets from a CDN).
"""

import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from ..config import Config
from ..errors import ConfigError
from ..ledger import LIVE, Ledger, PilotState
from ..ledger.accounting import account, pilot_jobs, state_history
from ..ledger.controls import drain_pilot, drain_site, requests, set_paused
from ..ledger.overrides import SiteOverride, apply_override, clear_override, set_override
from .auth import Access, load_token
from .inputs import MAX_WINDOW, MIN_WINDOW, Count, Points, Text, Timestamp, Window
from .metrics import build_registry
from .views import (
    costs_of,
    dashboard_view,
    demand_view,
    pilot_view,
    plan_view,
    request_view,
    site_view,
    sites_view,
)

__all__ = ["STATIC", "ActionBody", "create_app"]

STATIC = Path(__file__).parent / "static"
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


class ActionBody(BaseModel):
    """Optional body of a mutating action."""

    reason: Text = Field("", description="Why: kept in the ledger and shown on the dashboard.")


class ScaleBody(BaseModel):
    """A site's floor and ceiling of pilots (either may be omitted: the config's value applies)."""

    floor: Count | None = Field(None, description="Keep at least this many pilots at the site.")
    ceiling: Count | None = Field(None, description="Keep at most this many pilots at the site.")
    note: Text = Field("", description="Why; default: who set it.")


def create_app(
    config: Config,
    ledger: Ledger,
    *,
    token: str | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app. ``token`` overrides the one configured (``api.token_file``/``api.token_env``)."""
    token = token if token is not None else load_token(config.api)
    if token is None and not config.api.read_only_open:
        raise ConfigError("api.read_only_open = false needs a token: set api.token_file or api.token_env")
    access = Access(token, read_only_open=config.api.read_only_open)
    Reader = Annotated[str, Depends(access.read)]
    Writer = Annotated[str, Depends(access.write)]
    name = config.factory.name
    registry = build_registry(config, ledger, clock=clock)

    app = FastAPI(
        title="campus-factory",
        summary="Sites, pilots, demand, plans and accounting of a campus-factory; operator actions.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with the problems, like FastAPI's own handler, except that an input that is not UTF-8,
        not a finite number or holds a lone surrogate is shown as escaped text (FastAPI's handler
        cannot encode it: a 500)."""
        safe: dict[Any, Callable[[Any], Any]] = {
            bytes: lambda b: b.decode("utf-8", "backslashreplace"),
            float: lambda f: f if math.isfinite(f) else str(f),
            str: lambda s: s.encode("utf-8", "backslashreplace").decode("utf-8"),  # a lone surrogate
        }
        return JSONResponse({"detail": jsonable_encoder(exc.errors(), custom_encoder=safe)}, status_code=422)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def site_or_404(site: str) -> Any:
        for s in config.sites:
            if s.name == site:
                return s
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site named {site!r} in the config")

    # -- reads ------------------------------------------------------------------------------
    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/sites", tags=["read"])
    def get_sites(_: Reader) -> list[dict[str, Any]]:
        """Every configured site: status (ok, backoff, probing, black hole, paused, draining, disabled),
        health, pilots by state, and the last plan's decision there."""
        return sites_view(config, ledger, clock())

    @app.get("/api/v1/sites/{site}", tags=["read"])
    def get_site(site: str, _: Reader) -> dict[str, Any]:
        return site_view(config, ledger, site_or_404(site), clock())

    @app.get("/api/v1/pilots", tags=["read"])
    def get_pilots(
        _: Reader,
        site: str | None = None,
        state: Annotated[list[PilotState] | None, Query()] = None,
        all_states: Annotated[bool, Query(alias="all", description="Include ended pilots.")] = False,
        limit: Annotated[int, Query(ge=1, le=5000)] = 200,
        offset: Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many (paging).")] = 0,
    ) -> list[dict[str, Any]]:
        """Pilots, newest first: live ones unless ``state`` or ``all`` is given; one page of
        ``limit`` from ``offset``."""
        states = state or (None if all_states else list(LIVE))
        pilots = ledger.pilots(factory=name, site=site, states=states, limit=limit, offset=offset)
        return [pilot_view(p) for p in pilots]

    @app.get("/api/v1/pilots/{pilot_id}", tags=["read"])
    def get_pilot(pilot_id: str, _: Reader) -> dict[str, Any]:
        """One pilot, its transitions and the jobs that ran on it."""
        p = ledger.pilot(pilot_id)
        if p is None or p.factory != name:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pilot {pilot_id!r}")
        return {
            **pilot_view(p),
            "transitions": [
                {"at": t.at, "from": t.from_state, "to": t.to_state, "event": t.event, "detail": t.detail}
                for t in ledger.transitions(pilot_id)
            ],
            "jobs": [j.__dict__ for j in pilot_jobs(ledger, pilot_id)],
        }

    @app.get("/api/v1/demand", tags=["read"])
    def get_demand(_: Reader) -> dict[str, Any]:
        """Idle job groups at the last cycle and where each went."""
        return demand_view(config, ledger)

    @app.get("/api/v1/plan", tags=["read"])
    def get_plan(_: Reader) -> dict[str, Any]:
        """The last plan with its reasons, and its explanation as text."""
        return plan_view(config, ledger)

    @app.get("/api/v1/accounting", tags=["read"])
    def get_accounting(
        _: Reader,
        since: Annotated[Timestamp | None, Query(description="UNIX time; default: until - 24 h.")] = None,
        until: Annotated[Timestamp | None, Query(description="UNIX time; default: now.")] = None,
        by: Literal["site", "owner", "route", "schedd"] = "site",
    ) -> dict[str, Any]:
        """Core-hours delivered, used and wasted; pilots requested, started, failed; spend."""
        end = clock() if until is None else until
        start = end - 86400.0 if since is None else since
        if end <= start:
            raise HTTPException(422, "until must be after since")
        acc = account(ledger, since=start, until=end, by=by, costs=costs_of(config), factory=name, now=clock())
        return acc.as_dict()

    default_window = min(max(config.api.history_window, MIN_WINDOW), MAX_WINDOW)

    @app.get("/api/v1/history", tags=["read"])
    def get_history(
        _: Reader,
        window: Window = default_window,
        points: Points = 49,
        site: str | None = None,
    ) -> dict[str, Any]:
        """Pilots in each live state over the last ``window`` seconds (from the transitions)."""
        now = clock()
        return state_history(ledger, since=now - window, until=now, points=points, factory=name, site=site)

    @app.get("/api/v1/requests", tags=["read"])
    def get_requests(_: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        """Operator requests, newest first, with what the loop did about them."""
        return [request_view(r) for r in requests(ledger, name, limit=limit)]

    @app.get("/api/v1/dashboard", tags=["read"])
    def get_dashboard(_: Reader) -> dict[str, Any]:
        """Everything the dashboard shows, in one document."""
        return dashboard_view(config, ledger, clock())

    @app.get("/metrics", tags=["read"])
    def metrics(_: Reader) -> Response:
        """Prometheus metrics, in the text exposition format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # -- actions ----------------------------------------------------------------------------
    Reason = Annotated[ActionBody | None, Body()]

    @app.post("/api/v1/sites/{site}/pause", tags=["actions"])
    def pause_site(site: str, who: Writer, body: Reason = None) -> dict[str, Any]:
        """No new pilots at the site until it is resumed; its pilots keep running."""
        site_or_404(site)
        ov = set_paused(ledger, name, site, True, now=clock(), by=who, reason=(body or ActionBody()).reason)
        return {"site": site, "paused": ov.paused, "draining": ov.draining}

    @app.post("/api/v1/sites/{site}/resume", tags=["actions"])
    def resume_site(site: str, who: Writer, body: Reason = None) -> dict[str, Any]:
        """Undo a pause or a drain: the planner may start pilots there again."""
        site_or_404(site)
        ov = set_paused(ledger, name, site, False, now=clock(), by=who, reason=(body or ActionBody()).reason)
        return {"site": site, "paused": ov.paused, "draining": ov.draining}

    @app.post("/api/v1/sites/{site}/drain", status_code=status.HTTP_202_ACCEPTED, tags=["actions"])
    def drain_a_site(site: str, who: Writer, body: Reason = None) -> dict[str, Any]:
        """Pause the site and ask each of its live pilots to leave (at the next cycle)."""
        site_or_404(site)
        ov, reqs = drain_site(ledger, name, site, now=clock(), by=who, reason=(body or ActionBody()).reason)
        return {"site": site, "paused": ov.paused, "draining": ov.draining, "requests": [request_view(r) for r in reqs]}

    @app.post("/api/v1/pilots/{pilot_id}/drain", status_code=status.HTTP_202_ACCEPTED, tags=["actions"])
    def drain_a_pilot(pilot_id: str, who: Writer, body: Reason = None) -> dict[str, Any]:
        """Ask one pilot to leave gracefully (at the next cycle)."""
        p = ledger.pilot(pilot_id)
        if p is None or p.factory != name:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no pilot {pilot_id!r}")
        if p.state not in LIVE:
            raise HTTPException(status.HTTP_409_CONFLICT, f"pilot {pilot_id} has already ended ({p.state.value})")
        req = drain_pilot(ledger, name, pilot_id, now=clock(), by=who, reason=(body or ActionBody()).reason)
        return request_view(req)

    @app.post("/api/v1/sites/{site}/scale", tags=["actions"])
    def scale_site(site: str, who: Writer, body: Annotated[ScaleBody, Body()]) -> dict[str, Any]:
        """Set the site's floor and ceiling of pilots (replacing limits.floor/limits.ceiling of the
        config until cleared); the planner uses them from the next cycle."""
        cfg = site_or_404(site)
        if body.floor is None and body.ceiling is None:
            raise HTTPException(422, "give a floor, a ceiling or both (DELETE this resource to clear them)")
        try:
            apply_override(cfg.limits, SiteOverride(name, site, body.floor, body.ceiling, clock()))
            ov = set_override(
                ledger, name, site, floor=body.floor, ceiling=body.ceiling, now=clock(), note=body.note or who
            )
        except ConfigError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"site": site, "floor": ov.floor, "ceiling": ov.ceiling, "note": ov.note}

    @app.delete("/api/v1/sites/{site}/scale", tags=["actions"])
    def unscale_site(site: str, _who: Writer) -> dict[str, Any]:
        """Clear the site's floor and ceiling override: the config's limits apply again."""
        site_or_404(site)
        return {"site": site, "cleared": clear_override(ledger, name, site)}

    @app.post("/api/v1/pilots/{pilot_id}/cancel", tags=["actions"], status_code=status.HTTP_501_NOT_IMPLEMENTED)
    def cancel_pilot(pilot_id: str, _who: Writer) -> JSONResponse:
        """Not supported yet: removing a pilot at once (not gracefully) is left to the site's tools."""
        return JSONResponse(
            {
                "detail": "cancelling a pilot at once is not supported yet: drain it "
                f"(POST /api/v1/pilots/{pilot_id}/drain) to ask it to leave gracefully"
            },
            status_code=status.HTTP_501_NOT_IMPLEMENTED,
        )

    # -- dashboard --------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
