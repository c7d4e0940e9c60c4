"""A ledger filled by hand, with accounting totals worked out on paper (used by the accounting,
report, API and dashboard tests).

Window [T0, T0 + 6 h); alpha pilots have 4 cores (0.05 per core-hour), beta pilots 2 (0.10).

=====  =====  =======================================  ===================================
pilot  site   life (hours from T0)                     jobs (owner, route, cores, hours)
=====  =====  =======================================  ===================================
a1     alpha  created 0, runs 1-5, ends            16   j1 alice transparent 4 x 1-3 = 8
                                                        j2 bob   transparent 4 x 3-5 = 8
a2     alpha  created 0, runs 2-3, requeued, runs 4-    j3 alice no-cloud   2 x 4-  = 4
              (still running at 6)                 12
a3     alpha  created 1, refused at submission      0   -
b1     beta   created -2, runs -1..2, ends          4   j4 bob   no-cloud   2 x -1..1 = 2
b2     beta   created 2.5, runs 3-3.5, fails        1   -
o1     alpha  another factory: never counted
=====  =====  =======================================  ===================================

By site: alpha delivered 28, used 20, wasted 8 (28.6 %), requested 3, started 2, failed 1,
spend 1.40; beta delivered 5, used 2, wasted 3 (60.0 %), requested 1, started 1, failed 1,
spend 0.50; total 33 / 22 / 11 (33.3 %), 4 requested, 3 started, 2 failed, spend 1.90.
"""

from __future__ import annotations

from campus_factory.domain import PilotRequest
from campus_factory.ledger import Ledger, PilotEvent, Update
from campus_factory.ledger.accounting import JobRun, record_pilot_jobs

__all__ = ["COSTS", "FACTORY", "T0", "UNTIL", "H", "build"]

H = 3600.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
UNTIL = T0 + 6 * H
FACTORY = "campus"
COSTS = {"alpha": 0.05, "beta": 0.10}
E = PilotEvent


def _request(ledger: Ledger, pilot_id: str, site: str, cpus: int, at: float, factory: str = FACTORY) -> None:
    req = PilotRequest(pilot_id, cpus=cpus, memory_mb=1000, disk_mb=1000, gpus=0, walltime_s=12 * H)
    ledger.record_requests(factory=factory, site=site, submission_id=f"s-{pilot_id}", requests=[req], now=at)


def _at(
    ledger: Ledger,
    hours: float,
    pilot_id: str,
    event: PilotEvent,
    detail: str = "",
    job_id: str | None = None,
    exit_code: int | None = None,
) -> None:
    ledger.apply([Update(pilot_id, event, detail, job_id, exit_code)], T0 + hours * H)


def build(ledger: Ledger) -> None:
    _request(ledger, "b1", "beta", 2, T0 - 2 * H)
    _at(ledger, -2, "b1", E.SUBMITTED, job_id="100")
    _at(ledger, -1, "b1", E.STARTED)
    _request(ledger, "a1", "alpha", 4, T0)
    _request(ledger, "a2", "alpha", 4, T0)
    _at(ledger, 0, "a1", E.SUBMITTED, job_id="1")
    _at(ledger, 0, "a2", E.SUBMITTED, job_id="2")
    _request(ledger, "a3", "alpha", 4, T0 + 1 * H)
    _at(ledger, 1, "a3", E.SUBMIT_FAILED, detail="sbatch: error: invalid partition")
    _at(ledger, 1, "a1", E.STARTED)
    _at(ledger, 1.5, "a1", E.JOINED)
    _at(ledger, 2, "a2", E.STARTED)
    _at(ledger, 2, "b1", E.COMPLETED)
    _request(ledger, "b2", "beta", 2, T0 + 2.5 * H)
    _at(ledger, 2.5, "b2", E.SUBMITTED, job_id="101")
    _at(ledger, 3, "a2", E.PENDING, detail="requeued by the site")
    _at(ledger, 3, "b2", E.STARTED)
    _at(ledger, 3.5, "b2", E.FAILED, detail="exit 1", exit_code=1)
    _at(ledger, 4, "a2", E.STARTED)
    _at(ledger, 4.5, "a2", E.JOINED)
    _at(ledger, 5, "a1", E.COMPLETED)
    _request(ledger, "o1", "alpha", 8, T0, factory="other")
    _at(ledger, 0, "o1", E.STARTED)
    record_pilot_jobs(
        ledger,
        [
            JobRun("a1", "schedd#1.0", "alice", "transparent", T0 + 1 * H, T0 + 3 * H, 4),
            JobRun("a1", "schedd#2.0", "bob", "transparent", T0 + 3 * H, T0 + 5 * H, 4),
            JobRun("a2", "schedd#3.0", "alice", "no-cloud", T0 + 4 * H, None, 2),
            JobRun("b1", "schedd#4.0", "bob", "no-cloud", T0 - 1 * H, T0 + 1 * H, 2),
            JobRun("o1", "schedd#9.0", "mallory", "transparent", T0, None, 8),
        ],
    )
