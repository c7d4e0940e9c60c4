"""Serving operators' drain requests (queued in the ledger by the API), once a cycle.

Each ``drain_pilot`` request asks its pilot to leave once (gracefully when it runs, at once
while it is queued) through the loop's ``leave`` callback, and records what happened; a pilot
still ``requested`` keeps its request until its job id is known.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence

from ..errors import CampusFactoryError
from ..ledger import LIVE, Ledger, PilotRecord, PilotState
from ..ledger.controls import DRAIN_PILOT, complete_request, pending_requests

__all__ = ["Leave", "serve_drain_requests"]

#: the loop's way to ask pilots of one site to leave: (site, [(pilot, reason)], graceful) -> how many
Leave = Callable[[str, Sequence[tuple[PilotRecord, str]], bool], Awaitable[int]]


async def serve_drain_requests(
    ledger: Ledger, factory: str, sites: Collection[str], leave: Leave, clock: Callable[[], float]
) -> list[str]:
    """Serve every pending request; returns the errors met (a failed cancel is also recorded)."""
    errors: list[str] = []
    for req in pending_requests(ledger, factory):
        now = clock()
        pilot = ledger.pilot(req.target) if req.kind == DRAIN_PILOT else None
        if req.kind != DRAIN_PILOT:
            complete_request(ledger, req.id, now=now, result=f"unknown request kind {req.kind!r}")
        elif pilot is None or pilot.state not in LIVE:
            complete_request(ledger, req.id, now=now, result="already ended")
        elif pilot.job_id is None or pilot.site not in sites:
            if pilot.state is not PilotState.REQUESTED:  # requested: its job id comes next cycle
                complete_request(ledger, req.id, now=now, result="cancel failed: no job at a known site")
        else:
            graceful = pilot.state in (PilotState.RUNNING, PilotState.JOINED, PilotState.RETIRING)
            try:
                n = await leave(pilot.site, [(pilot, f"drained: {req.reason}")], graceful)
            except CampusFactoryError as exc:
                errors.append(f"drain {pilot.pilot_id}: {exc}")
                complete_request(ledger, req.id, now=now, result=f"cancel failed: {exc}")
                continue
            complete_request(ledger, req.id, now=now, result="asked to leave" if n else "cancel failed")
    return errors
