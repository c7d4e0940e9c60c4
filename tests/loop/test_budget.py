"""Spend and spend ceilings (pure functions)."""

from __future__ import annotations

import pytest

from campus_factory.loop.budget import (
    DAY,
    HOUR,
    Ceiling,
    UsageRecord,
    allowed_pilots,
    burn_rate,
    core_hours,
    spend_by_site,
)

NOW = 1_000_000.0
COSTS = {"cloud": 0.10, "cheap": 0.02, "campus": 0.0}


def test_core_hours_clip_to_the_window() -> None:
    p = UsageRecord("cloud", 4, "ended", started_at=NOW - 3 * HOUR, ended_at=NOW - HOUR)
    assert core_hours(p, NOW - DAY, NOW) == pytest.approx(8.0)
    assert core_hours(p, NOW - 2 * HOUR, NOW) == pytest.approx(4.0)
    assert core_hours(UsageRecord("cloud", 4, "queued"), NOW - DAY, NOW) == 0.0
    running = UsageRecord("cloud", 2, "running", started_at=NOW - HOUR / 2)
    assert core_hours(running, NOW - DAY, NOW) == pytest.approx(1.0)


def test_spend_and_rate_per_site() -> None:
    pilots = [
        UsageRecord("cloud", 2, "running", started_at=NOW - 2 * HOUR),
        UsageRecord("cloud", 2, "queued"),
        UsageRecord("cheap", 1, "ended", started_at=NOW - 30 * HOUR, ended_at=NOW - 20 * HOUR),
        UsageRecord("campus", 8, "running", started_at=NOW - 5 * HOUR),
    ]
    spend = spend_by_site(pilots, COSTS, NOW - DAY, NOW)
    assert spend == {"cloud": pytest.approx(0.4), "cheap": pytest.approx(0.08)}
    assert burn_rate(pilots, COSTS) == {"cloud": pytest.approx(0.4)}


def test_free_sites_and_no_ceiling_allow_everything() -> None:
    assert allowed_pilots("campus", 5, 8, [], COSTS, NOW, site_ceiling=Ceiling(0.0, 0.0)).allowed == 5
    assert allowed_pilots("cloud", 5, 8, [], COSTS, NOW).allowed == 5
    assert allowed_pilots("cloud", 0, 8, [], COSTS, NOW, site_ceiling=Ceiling(1.0)).allowed == 0


def test_an_hourly_ceiling_stops_new_instances() -> None:
    live = [UsageRecord("cloud", 2, "running", started_at=NOW - HOUR) for _ in range(3)]  # 0.6/hour
    d = allowed_pilots("cloud", 5, 2, live, COSTS, NOW, site_ceiling=Ceiling(per_hour=1.0))
    assert d.allowed == 2 and "1/hour" in d.reason
    d = allowed_pilots("cloud", 5, 2, [*live, *live], COSTS, NOW, site_ceiling=Ceiling(per_hour=1.0))
    assert d.allowed == 0
    # ended pilots do not count towards the rate
    ended = [UsageRecord("cloud", 2, "ended", started_at=NOW - 2 * HOUR, ended_at=NOW - HOUR)] * 10
    assert allowed_pilots("cloud", 5, 2, ended, COSTS, NOW, site_ceiling=Ceiling(per_hour=1.0)).allowed == 5


def test_a_daily_ceiling_counts_what_was_spent() -> None:
    spent = [UsageRecord("cloud", 10, "ended", started_at=NOW - 20 * HOUR, ended_at=NOW - 10 * HOUR)]  # 10.0
    d = allowed_pilots("cloud", 4, 10, spent, COSTS, NOW, site_ceiling=Ceiling(per_day=12.5))
    assert d.allowed == 2 and "/day" in d.reason  # 10 + 2 x 1.0 <= 12.5
    older = [UsageRecord("cloud", 10, "ended", started_at=NOW - 40 * HOUR, ended_at=NOW - 30 * HOUR)]
    assert allowed_pilots("cloud", 4, 10, older, COSTS, NOW, site_ceiling=Ceiling(per_day=12.5)).allowed == 4


def test_the_overall_ceiling_spans_sites() -> None:
    others = [UsageRecord("cheap", 10, "running", started_at=NOW - HOUR)]  # 0.2/hour elsewhere
    d = allowed_pilots("cloud", 5, 1, others, COSTS, NOW, site_ceiling=Ceiling(per_hour=10), overall=Ceiling(0.5))
    assert d.allowed == 3 and d.reason.startswith("overall")


def test_ledger_records_fit() -> None:
    from campus_factory.ledger import PilotRecord, PilotState

    rec = PilotRecord(
        "cloud-1", "f", "cloud", "s", None, "i-1", PilotState.RUNNING, 4, 100, 0, 0, 3600.0,
        NOW - HOUR, NOW - HOUR, NOW - HOUR, None, None, None, "",
    )  # fmt: skip
    assert burn_rate([rec], COSTS) == {"cloud": pytest.approx(0.4)}
    assert allowed_pilots("cloud", 3, 4, [rec], COSTS, NOW, site_ceiling=Ceiling(per_hour=1.0)).allowed == 1
