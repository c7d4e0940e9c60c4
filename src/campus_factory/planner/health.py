"""Isolation: a site's health as a pure function of its recent pilot history.

Each recent pilot (within ``window_s``) is classified, newest first:

* **start failure**: failed or lost without ever starting (refused, lost submission);
* **early death**: started, then failed or was lost within ``early_death_s``;
* **no join** (black-hole symptom, only when joins are observed): started, and its startd did
  not join the pool within ``join_timeout_s`` (still running, or ended without joining);
* **success**: joined (or, when joins are not observed, ran past ``early_death_s`` or ended
  cleanly); anything else (queued, cancelled by us, young) is neutral.

Consecutive failures since the newest success give an exponential backoff from the newest
failure: ``min(backoff_base_s * 2**(n - backoff_after), backoff_max_s)`` once ``n >=
backoff_after``. While it runs the site gets no new pilots (``backoff``); after it, one pilot
at a time (``probing``) until one succeeds. The last ``black_hole_after`` started pilots all
failing to join flag the site as a black hole. Other sites are unaffected: each site's
history is its own.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .types import SiteHealth

__all__ = ["HealthSettings", "PilotHistory", "PilotOutcome", "classify", "outcomes", "site_health"]


class PilotHistory(Protocol):
    """What health needs of a pilot record (the ledger's ``PilotRecord`` has it)."""

    @property
    def pilot_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def joined_at(self) -> float | None: ...
    @property
    def ended_at(self) -> float | None: ...


@dataclass(frozen=True)
class PilotOutcome:
    pilot_id: str
    state: str
    created_at: float
    started_at: float | None = None
    joined_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class HealthSettings:
    backoff_base_s: float = 60.0
    backoff_max_s: float = 3600.0
    backoff_after: int = 2
    early_death_s: float = 300.0
    join_timeout_s: float | None = 600.0  # None: joins are not observed, no black-hole check
    black_hole_after: int = 3
    window_s: float = 6 * 3600.0
    latency_samples: int = 10


_FAILED = frozenset({"failed", "lost"})
_QUEUED = frozenset({"requested", "queued"})


def outcomes(records: Iterable[PilotHistory]) -> list[PilotOutcome]:
    """Plain outcomes from ledger records (or anything with the same attributes)."""
    return [
        PilotOutcome(r.pilot_id, str(r.state), r.created_at, r.started_at, r.joined_at, r.ended_at) for r in records
    ]


def classify(p: PilotOutcome, now: float, s: HealthSettings) -> tuple[str, float]:
    """(kind, when) with kind one of success, start_failure, early_death, no_join, neutral."""
    state = str(p.state)
    if p.started_at is None:
        if state in _FAILED:
            return "start_failure", p.ended_at or p.created_at
        return "neutral", p.created_at
    end = p.ended_at
    if state in _FAILED and end is not None and end - p.started_at < s.early_death_s:
        return "early_death", end
    if s.join_timeout_s is not None:
        if p.joined_at is not None:
            return "success", p.joined_at
        if state == "cancelled" or state in _QUEUED:
            return "neutral", p.started_at
        ran = (end if end is not None else now) - p.started_at
        if ran >= s.join_timeout_s:
            return "no_join", p.started_at + s.join_timeout_s
        if end is not None and state != "retiring":
            return "early_death", end  # ended without its startd ever joining
        return "neutral", p.started_at
    if state in _FAILED and end is None:
        return "early_death", p.started_at
    ran = (end if end is not None else now) - p.started_at
    if ran >= s.early_death_s or state == "ended":
        return "success", p.started_at
    return "neutral", p.started_at


def site_health(history: Iterable[PilotOutcome], now: float, settings: HealthSettings) -> SiteHealth:
    """The site's health now, from its recent pilots (any order)."""
    recent = [p for p in history if now - p.created_at <= settings.window_s]
    judged = sorted(
        ((*classify(p, now, settings), p) for p in recent),
        key=lambda t: (-t[1], t[2].pilot_id),
    )
    failures = 0
    last_failure: float | None = None
    kinds: dict[str, int] = {}
    for kind, when, _p in judged:
        if kind == "neutral":
            continue
        if kind == "success":
            break
        failures += 1
        kinds[kind] = kinds.get(kind, 0) + 1
        last_failure = when if last_failure is None else max(last_failure, when)
    started = [(k, p) for k, _w, p in judged if p.started_at is not None and k != "neutral"]
    black_hole = (
        settings.join_timeout_s is not None
        and settings.black_hole_after > 0
        and len(started) >= settings.black_hole_after
        and all(k == "no_join" for k, _ in started[: settings.black_hole_after])
    )
    newest = sorted(recent, key=lambda p: (-p.created_at, p.pilot_id))  # one sort for both samples
    latencies = [p for p in newest if p.started_at is not None][: settings.latency_samples]
    latency = statistics.median(p.started_at - p.created_at for p in latencies if p.started_at) if latencies else None
    joins = [p for p in newest if p.joined_at is not None][: settings.latency_samples]
    join = statistics.median(max(0.0, (p.joined_at or 0.0) - p.created_at) for p in joins) if joins else None
    reasons: list[str] = []
    if black_hole:
        reasons.append(
            f"black hole: the last {settings.black_hole_after} started pilots never joined the pool "
            f"within {settings.join_timeout_s:.0f} s"
        )
    if failures < max(settings.backoff_after, 1) or last_failure is None:
        if failures:
            reasons.append(f"{failures} recent failure(s): {_kinds(kinds)}")
        return SiteHealth("ok", failures, None, black_hole, latency, tuple(reasons), join, len(joins))
    delay = min(settings.backoff_base_s * 2 ** (failures - max(settings.backoff_after, 1)), settings.backoff_max_s)
    until = last_failure + delay
    state = "backoff" if now < until else "probing"
    reasons.append(
        f"{failures} consecutive failure(s) ({_kinds(kinds)}): backoff {delay:.0f} s until {until:.0f}"
        + ("" if state == "backoff" else ", expired: one probe pilot at a time")
    )
    return SiteHealth(state, failures, until, black_hole, latency, tuple(reasons), join, len(joins))


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(kinds.items()))
