"""Isolation: backoff and black-hole flags as a pure function of recent pilot history."""

from __future__ import annotations

import pytest

from campus_factory.planner.health import HealthSettings, PilotOutcome, classify, outcomes, site_health

NOW = 1_000_000.0
S = HealthSettings(
    backoff_base_s=60,
    backoff_max_s=600,
    backoff_after=2,
    early_death_s=300,
    join_timeout_s=600,
    black_hole_after=3,
    window_s=3600,
)
NO_JOIN_CHECK = HealthSettings(
    backoff_base_s=60, backoff_max_s=600, backoff_after=2, early_death_s=300, join_timeout_s=None, window_s=3600
)


def refused(pid: str, at: float) -> PilotOutcome:
    return PilotOutcome(pid, "failed", at - 5, None, None, at)


def died(pid: str, start: float, ran: float = 30) -> PilotOutcome:
    return PilotOutcome(pid, "failed", start - 10, start, None, start + ran)


def joined(pid: str, start: float) -> PilotOutcome:
    return PilotOutcome(pid, "joined", start - 10, start, start + 5, None)


def silent(pid: str, start: float) -> PilotOutcome:  # running, never joined
    return PilotOutcome(pid, "running", start - 10, start, None, None)


@pytest.mark.parametrize(
    ("outcome", "settings", "kind"),
    [
        (refused("a", NOW - 10), S, "start_failure"),
        (died("a", NOW - 100), S, "early_death"),
        (PilotOutcome("a", "failed", NOW - 2000, NOW - 1900, None, NOW - 100), S, "no_join"),
        (joined("a", NOW - 100), S, "success"),
        (silent("a", NOW - 700), S, "no_join"),
        (silent("a", NOW - 100), S, "neutral"),
        (PilotOutcome("a", "queued", NOW - 100), S, "neutral"),
        (PilotOutcome("a", "cancelled", NOW - 100, NOW - 90, None, NOW - 50), S, "neutral"),
        (PilotOutcome("a", "ended", NOW - 100, NOW - 90, None, NOW - 50), S, "early_death"),
        (silent("a", NOW - 700), NO_JOIN_CHECK, "success"),
        (died("a", NOW - 100), NO_JOIN_CHECK, "early_death"),
        (PilotOutcome("a", "ended", NOW - 100, NOW - 90, None, NOW - 50), NO_JOIN_CHECK, "success"),
    ],
)
def test_classify(outcome: PilotOutcome, settings: HealthSettings, kind: str) -> None:
    assert classify(outcome, NOW, settings)[0] == kind


@pytest.mark.parametrize(
    ("history", "state", "failures", "until"),
    [
        ([], "ok", 0, None),
        ([joined("a", NOW - 100)], "ok", 0, None),
        ([refused("a", NOW - 10)], "ok", 1, None),  # below backoff_after
        ([refused("a", NOW - 20), refused("b", NOW - 10)], "backoff", 2, NOW - 10 + 60),
        ([refused("a", NOW - 30), refused("b", NOW - 20), refused("c", NOW - 10)], "backoff", 3, NOW - 10 + 120),
        ([refused(f"p{i}", NOW - 10 - i) for i in range(10)], "backoff", 10, NOW - 10 + 600),  # capped
        ([refused("a", NOW - 200), refused("b", NOW - 100)], "probing", 2, NOW - 100 + 60),  # expired
        ([refused("a", NOW - 30), refused("b", NOW - 20), joined("c", NOW - 10)], "ok", 0, None),
        ([joined("c", NOW - 40), refused("a", NOW - 30), refused("b", NOW - 20)], "backoff", 2, NOW - 20 + 60),
        ([refused("a", NOW - 5000), refused("b", NOW - 4000)], "ok", 0, None),  # outside the window
    ],
)
def test_backoff(history: list[PilotOutcome], state: str, failures: int, until: float | None) -> None:
    h = site_health(history, NOW, S)
    assert (h.state, h.consecutive_failures, h.backoff_until) == (state, failures, until)


def test_black_hole_flag_and_recovery() -> None:
    history = [silent(f"p{i}", NOW - 1000 - i) for i in range(3)]
    h = site_health(history, NOW, S)
    assert h.black_hole and h.state in ("backoff", "probing")
    assert any("black hole" in r for r in h.reasons)
    assert not site_health([*history, joined("ok", NOW - 10)], NOW, S).black_hole
    assert not site_health(history, NOW, NO_JOIN_CHECK).black_hole  # joins not observed: no flag


def test_latency_is_the_median_of_recent_starts() -> None:
    history = [
        PilotOutcome(f"p{i}", "joined", NOW - 1000 + i, NOW - 1000 + i + d, NOW - 500, None)
        for i, d in enumerate((10, 30, 90))
    ]
    assert site_health(history, NOW, S).start_latency_s == 30


def test_each_site_has_its_own_history() -> None:
    bad = [refused("a", NOW - 20), refused("b", NOW - 10)]
    assert site_health(bad, NOW, S).state == "backoff"
    assert site_health([joined("x", NOW - 10)], NOW, S).state == "ok"


def test_outcomes_from_records_shape() -> None:
    class Rec:
        pilot_id = "p"
        state = "failed"
        created_at = NOW - 10
        started_at = None
        joined_at = None
        ended_at = NOW - 5

    assert outcomes([Rec()]) == [PilotOutcome("p", "failed", NOW - 10, None, None, NOW - 5)]
