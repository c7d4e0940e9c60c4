"""Act: what a plan asks of one site, done through its provider and written to the ledger.

Cancellations first (graceful ones, then removals), then one submission (one job array) per
pilot size. A submission's ``requested`` rows are written before it reaches the site, so a crash
between the two leaves pilots the next cycle adopts or marks failed, never unknown ones; a site's
answer that reuses job ids other pilots hold is refused as a failed submission.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import SiteConfig
from ..domain import PilotRequest
from ..errors import CampusFactoryError, SubmitError
from ..ledger import PilotEvent, PilotRecord, Update
from ..planner import Plan
from ..providers.base import Provider, Submission
from .reconcile import duplicate_job_ids
from .report import CycleReport

if TYPE_CHECKING:
    from .factory import Factory

__all__ = ["act_site", "leave"]

log = logging.getLogger("campus_factory.loop.factory")  # the loop's log lines keep their logger


async def leave(factory: Factory, site: str, pilots: Sequence[tuple[PilotRecord, str]], graceful: bool) -> int:
    """Ask pilots to leave (or remove them); returns how many the site accepted."""
    jobs = {p.job_id: (p, why) for p, why in pilots if p.job_id}
    if not jobs:
        return 0
    results = await factory.providers[site].cancel(list(jobs), graceful=graceful)
    ok = [Update(jobs[r.job_id][0].pilot_id, PilotEvent.LEAVE, jobs[r.job_id][1]) for r in results if r.ok]
    factory._apply(ok, factory.clock(), [p for p, _ in pilots])
    return len(ok)


async def act_site(factory: Factory, site: SiteConfig, plan_: Plan, report: CycleReport) -> None:
    provider = factory.providers[site.name]
    sp = plan_.site(site.name)
    if sp.cancel:
        pilots = {p.pilot_id: p for p in factory.live.of_site(site.name)}
        for graceful in (True, False):
            chosen = [
                (pilots[c.pilot_id], c.reason) for c in sp.cancel if c.graceful is graceful and c.pilot_id in pilots
            ]
            report.cancelled += await leave(factory, site.name, chosen, graceful)
    slot = (site.slot.cpus, site.slot.memory_mb, site.slot.disk_mb, site.slot.gpus)
    for *size, n in sp.pilot_sizes(slot):  # one submission (one job array) per pilot size
        await _submit(factory, site, provider, n, report, tuple(size), sp.instance_type_of(tuple(size)))


async def _submit(
    factory: Factory,
    site: SiteConfig,
    provider: Provider,
    n: int,
    report: CycleReport,
    size: tuple[int, ...],
    kind: str = "",
) -> None:
    sub_id = factory.new_id()
    cpus, memory_mb, disk_mb, gpus = size
    requests = tuple(
        PilotRequest(f"{site.name}-{factory.new_id()}", cpus, memory_mb, disk_mb, gpus, site.walltime, kind)
        for _ in range(n)
    )
    submission = Submission(sub_id, f"{factory.tag_prefix}{sub_id}", requests)
    recorded = factory.ledger.record_requests(
        factory=factory.name,
        site=site.name,
        submission_id=sub_id,
        requests=requests,
        now=factory.clock(),
        detail=f"submission {sub_id}",
    )
    factory.live.note(recorded)
    try:
        submitted = await provider.submit(submission)
        shared = duplicate_job_ids([s.job_id for s in submitted], factory.live.of_site(site.name))
        if shared:
            raise SubmitError(f"{site.name}: the site answered job id(s) {shared[:5]} that other pilots hold")
    except CampusFactoryError as exc:
        failed = [Update(r.pilot_id, PilotEvent.SUBMIT_FAILED, str(exc)[:2000]) for r in requests]
        factory._apply(failed, factory.clock())
        raise
    factory._apply(
        [Update(s.pilot_id, PilotEvent.SUBMITTED, f"job {s.job_id}", job_id=s.job_id) for s in submitted],
        factory.clock(),
    )
    report.submitted += len(submitted)
    log.info("%s: submitted %d pilot(s) as %s", site.name, len(submitted), ", ".join(s.job_id for s in submitted))
