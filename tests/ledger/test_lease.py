"""The ledger lease: one acting factory per name, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from campus_factory.config import parse_config
from campus_factory.demand import StaticDemand
from campus_factory.domain import JobGroup
from campus_factory.ledger import Ledger
from campus_factory.ledger.lease import acquire_lease, current_lease, release_lease
from campus_factory.loop.factory import Factory
from campus_factory.providers.fake import FakeProvider


def test_one_holder_at_a_time_and_takeover_after_expiry(ledger: Ledger) -> None:
    assert acquire_lease(ledger, "campus", "a", 10, now=100)
    assert not acquire_lease(ledger, "campus", "b", 10, now=105)
    assert acquire_lease(ledger, "campus", "a", 10, now=108)  # renewal
    assert not acquire_lease(ledger, "campus", "b", 10, now=117)  # still valid until 118
    assert acquire_lease(ledger, "campus", "b", 10, now=119)  # a stopped renewing
    lease = current_lease(ledger, "campus")
    assert lease is not None and lease.holder == "b" and lease.expires_at == 129
    assert not acquire_lease(ledger, "campus", "a", 10, now=120)
    assert acquire_lease(ledger, "other", "a", 10, now=120)  # leases are per name
    release_lease(ledger, "campus", "b")
    assert acquire_lease(ledger, "campus", "a", 10, now=121)  # released: taken at once


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_two_factories_one_ledger_only_one_acts_and_the_other_takes_over(ledger_url: str, tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "factory": {"name": "ha", "ledger_url": ledger_url, "cycle_interval": 10},
            "sites": [
                {
                    "name": "a",
                    "provider": "fake",
                    "slot": {"cpus": 1, "memory_mb": 100},
                    "limits": {"max_pilots": 4, "max_queued": 4, "max_submit_per_cycle": 4},
                }
            ],
        }
    )
    clock = Clock()
    site = FakeProvider("a", clock=clock)
    demand = StaticDemand([JobGroup("g", 3, cpus=1, memory_mb=100, disk_mb=0)])
    one = Factory(cfg, Ledger.open(ledger_url), demand, {"a": site}, clock=clock)
    two = Factory(cfg, Ledger.open(ledger_url), demand, {"a": site}, clock=clock)
    # two processes on two hosts (in one test process, a second factory would take over at once:
    # a holder that is this very process is an earlier factory object that crashed)
    one.holder, two.holder = "host-one:101:aaaa", "host-two:202:bbbb"
    r1, r2 = asyncio.run(one.run_once()), asyncio.run(two.run_once())
    assert not r1.standby and r1.submitted == 3
    assert r2.standby and r2.submitted == 0 and r2.plan is None
    assert site.submit_calls == 1
    # 'one' dies (stops cycling). 'two' tries twice a cycle: it acts within two cycles (20 s).
    took = None
    for half_cycles in range(1, 5):
        clock.t += 5
        if not asyncio.run(two.run_once()).standby:
            took = half_cycles * 5
            break
    assert took is not None and took <= 20
    assert len(site.active()) == 3 and site.submit_calls == 1  # it adopted the ledger: nothing twice
    # 'one' comes back: it is now the standby
    assert asyncio.run(one.run_once()).standby
