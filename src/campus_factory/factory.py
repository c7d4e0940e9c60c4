"""The loop: observe → plan → act → record, every cycle, idempotently.

Observe reads idle job groups and asks every site about its pilots (one query per site); the
ledger is brought up to date with what the sites report, including jobs submitted just before
a crash (matched by the tag in their name) and strangers carrying our tag (cancelled). Plan is
the pure planner. Act submits and cancels through the providers, writing ``requested`` rows
before a submission reaches a site, so a crash can never make a pilot unknown. A site that fails
affects only itself: it is marked unhealthy for the cycle and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .config import Config, SiteConfig
from .demand.base import DemandSource, JobGroup
from .errors import CampusFactoryError, DemandError, ProviderError
from .ledger import CycleRecord, Ledger, PilotEvent, PilotRecord, PilotState, Update
from .planner import PilotView, Plan, SiteSpec, plan
from .providers.base import JobState, JobStatus, PilotRequest, Provider, Submission
from .transport.executor import Executor

__all__ = ["CycleReport", "Factory", "build_factory", "site_spec"]

log = logging.getLogger(__name__)

_EVENT_OF: Mapping[JobState, PilotEvent] = {
    JobState.PENDING: PilotEvent.PENDING,
    JobState.RUNNING: PilotEvent.STARTED,
    JobState.COMPLETED: PilotEvent.COMPLETED,
    JobState.FAILED: PilotEvent.FAILED,
    JobState.CANCELLED: PilotEvent.CANCELLED,
    JobState.GONE: PilotEvent.GONE,
}


@dataclass
class CycleReport:
    started_at: float
    plan: Plan | None = None
    dry_run: bool = False
    submitted: int = 0
    cancelled: int = 0
    adopted: int = 0
    orphans_cancelled: int = 0
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0


def site_spec(site: SiteConfig, *, healthy: bool = True, note: str = "") -> SiteSpec:
    """The planner's view of a configured site."""
    return SiteSpec(
        name=site.name,
        cpus=site.slot.cpus,
        memory_mb=site.slot.memory_mb,
        disk_mb=site.slot.disk_mb,
        gpus=site.slot.gpus,
        max_pilots=site.limits.max_pilots,
        max_queued=site.limits.max_queued,
        max_submit_per_cycle=site.limits.max_submit_per_cycle,
        walltime_s=site.walltime,
        idle_timeout_s=site.idle_timeout,
        enabled=site.enabled,
        healthy=healthy,
        health_note=note,
    )


def _detail(st: JobStatus) -> str:
    parts = [f"{st.native_state or st.state.value}"]
    if st.exit_code is not None:
        parts.append(f"exit {st.exit_code}")
    if st.reason:
        parts.append(st.reason)
    if st.from_accounting:
        parts.append("(from accounting)")
    return ", ".join(parts)


class Factory:
    """One factory process: its config, ledger, demand source and one provider per site."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        demand: DemandSource,
        providers: Mapping[str, Provider],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.demand = demand
        self.providers = providers
        self.clock = clock
        self.name = config.factory.name
        self.tag_prefix = f"cf-{self.name}-"
        self._tag = re.compile(rf"^{re.escape(self.tag_prefix)}([0-9a-f]{{10}})$")

    # -- observe ----------------------------------------------------------------------------
    async def _observe_site(self, site: SiteConfig, report: CycleReport) -> None:
        provider = self.providers[site.name]
        now = self.clock()
        live = self.ledger.live_pilots(self.name, site.name)
        by_job = {p.job_id: p for p in live if p.job_id}
        obs = await provider.observe(sorted(by_job), self.tag_prefix)
        updates: list[Update] = []
        for job_id, st in obs.statuses.items():
            event = _EVENT_OF.get(st.state)
            if event is None:
                continue
            known = by_job[job_id]
            if known.state is PilotState.REQUESTED and event is PilotEvent.PENDING:
                event = PilotEvent.SUBMITTED
            updates.append(Update(known.pilot_id, event, _detail(st), exit_code=st.exit_code))
        # jobs carrying our tag: adopt those of requested pilots, cancel strangers
        requested: dict[tuple[str, int | None], PilotRecord] = {
            (p.submission_id, p.array_index): p for p in live if p.state is PilotState.REQUESTED
        }
        strangers: list[str] = []
        for st in obs.tagged:
            if st.job_id in by_job:
                continue
            m = self._tag.match(st.tag)
            if m is None:
                continue  # another factory's tag that merely shares our prefix
            pilot = requested.pop((m.group(1), st.array_index), None)
            if pilot is not None:
                event = _EVENT_OF.get(st.state, PilotEvent.PENDING)
                if event is PilotEvent.PENDING:
                    event = PilotEvent.SUBMITTED
                updates.append(Update(pilot.pilot_id, event, f"adopted job {st.job_id}", job_id=st.job_id))
                report.adopted += 1
            elif not st.state.finished:
                strangers.append(st.job_id)
        for pilot in requested.values():
            if pilot.job_id is None and now - pilot.created_at >= self.config.factory.submission_grace:
                updates.append(Update(pilot.pilot_id, PilotEvent.LOST_SUBMISSION, "never seen at the site"))
        self.ledger.apply(updates, now)
        if strangers:
            log.warning(
                "%s: cancelling %d job(s) with our tag unknown to the ledger: %s",
                site.name,
                len(strangers),
                strangers,
            )
            results = await provider.cancel(strangers, graceful=False)
            report.orphans_cancelled += sum(1 for r in results if r.ok)

    async def _guarded(
        self,
        site: SiteConfig,
        coro_fn: Callable[[], Awaitable[None]],
        what: str,
        report: CycleReport,
    ) -> bool:
        timeout = max(60.0, 4 * site.batch.command_timeout)
        try:
            await asyncio.wait_for(coro_fn(), timeout)
            return True
        except TimeoutError:
            msg = f"{site.name}: {what} took longer than {timeout:g} s"
        except ProviderError as exc:
            msg = f"{site.name}: {what} failed: {exc}"
        except CampusFactoryError as exc:
            msg = f"{site.name}: {what} failed: {exc}"
        log.warning("%s", msg)
        report.errors.append(msg)
        return False

    # -- act ----------------------------------------------------------------------------------
    async def _act_site(self, site: SiteConfig, plan_: Plan, report: CycleReport) -> None:
        provider = self.providers[site.name]
        sp = plan_.site(site.name)
        if sp.cancel:
            pilots = {p.pilot_id: p for p in self.ledger.live_pilots(self.name, site.name)}
            for graceful in (True, False):
                chosen = [c for c in sp.cancel if c.graceful is graceful]
                jobs = {
                    pilots[c.pilot_id].job_id: c for c in chosen if c.pilot_id in pilots and pilots[c.pilot_id].job_id
                }
                if not jobs:
                    continue
                results = await provider.cancel([j for j in jobs if j], graceful=graceful)
                ok = [Update(jobs[r.job_id].pilot_id, PilotEvent.LEAVE, jobs[r.job_id].reason) for r in results if r.ok]
                self.ledger.apply(ok, self.clock())
                report.cancelled += len(ok)
        if sp.submit > 0:
            await self._submit(site, provider, sp.submit, report)

    async def _submit(self, site: SiteConfig, provider: Provider, n: int, report: CycleReport) -> None:
        sub_id = uuid.uuid4().hex[:10]
        requests = tuple(
            PilotRequest(
                pilot_id=f"{site.name}-{uuid.uuid4().hex[:10]}",
                cpus=site.slot.cpus,
                memory_mb=site.slot.memory_mb,
                disk_mb=site.slot.disk_mb,
                gpus=site.slot.gpus,
                walltime_s=site.walltime,
            )
            for _ in range(n)
        )
        submission = Submission(sub_id, f"{self.tag_prefix}{sub_id}", requests)
        self.ledger.record_requests(
            factory=self.name,
            site=site.name,
            submission_id=sub_id,
            requests=requests,
            now=self.clock(),
            detail=f"submission {sub_id}",
        )
        try:
            submitted = await provider.submit(submission)
        except (ProviderError, CampusFactoryError) as exc:
            self.ledger.apply(
                [Update(r.pilot_id, PilotEvent.SUBMIT_FAILED, str(exc)[:2000]) for r in requests],
                self.clock(),
            )
            raise
        self.ledger.apply(
            [Update(s.pilot_id, PilotEvent.SUBMITTED, f"job {s.job_id}", job_id=s.job_id) for s in submitted],
            self.clock(),
        )
        report.submitted += len(submitted)
        log.info(
            "%s: submitted %d pilot(s) as %s",
            site.name,
            len(submitted),
            ", ".join(s.job_id for s in submitted),
        )

    # -- the cycle --------------------------------------------------------------------------
    def _views(self, live: Sequence[PilotRecord]) -> list[PilotView]:
        return [PilotView(p.pilot_id, p.site, p.state.value, p.state_since, None, p.job_id is not None) for p in live]

    async def run_once(self, *, dry_run: bool = False, demand: Sequence[JobGroup] | None = None) -> CycleReport:
        started = time.monotonic()
        report = CycleReport(started_at=self.clock(), dry_run=dry_run)
        sites = self.config.sites
        try:
            groups = list(demand) if demand is not None else await asyncio.to_thread(self.demand.idle_groups)
            demand_ok = True
        except DemandError as exc:
            groups, demand_ok = [], False
            report.errors.append(f"demand: {exc}")
            log.warning("cannot read demand, no pilots are started or cancelled: %s", exc)
        health: dict[str, tuple[bool, str]] = {s.name: (True, "") for s in sites}
        if dry_run:
            health = {s.name: (True, "") for s in sites}
        else:

            async def observe(site: SiteConfig) -> None:
                before = len(report.errors)
                ok = await self._guarded(site, lambda: self._observe_site(site, report), "observe", report)
                if not ok:
                    health[site.name] = (False, report.errors[before].split(": ", 1)[-1][:200])

            await asyncio.gather(*(observe(s) for s in sites))
        now = self.clock()
        specs = [
            site_spec(
                s,
                healthy=health[s.name][0] and demand_ok,
                note=health[s.name][1] or ("" if demand_ok else "demand unreadable"),
            )
            for s in sites
        ]
        report.plan = plan(groups, specs, self._views(self.ledger.live_pilots(self.name)), now)
        if not dry_run:
            current = report.plan

            async def act(site: SiteConfig) -> None:
                await self._guarded(site, lambda: self._act_site(site, current, report), "act", report)

            await asyncio.gather(*(act(s) for s in sites if health[s.name][0] and demand_ok))
        report.duration_s = time.monotonic() - started
        if not dry_run:
            self.ledger.record_cycle(
                CycleRecord(
                    self.name,
                    report.started_at,
                    report.duration_s,
                    dry_run,
                    report.submitted,
                    report.cancelled,
                    len(report.errors),
                    report.plan.to_dict(),
                )
            )
        return report

    async def run_forever(
        self,
        stop: asyncio.Event,
        *,
        dry_run: bool = False,
        on_cycle: Callable[[CycleReport], None] | None = None,
    ) -> None:
        """Cycle every ``cycle_interval`` seconds until ``stop`` is set."""
        interval = self.config.factory.cycle_interval
        while not stop.is_set():
            begun = time.monotonic()
            try:
                report = await self.run_once(dry_run=dry_run)
            except CampusFactoryError as exc:  # the loop never dies of one bad cycle
                log.error("cycle failed: %s", exc)
            else:
                if on_cycle is not None:
                    on_cycle(report)
            wait = max(0.0, interval - (time.monotonic() - begun))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)


def build_factory(
    config: Config,
    *,
    ledger_url: str | None = None,
    demand_file: str | None = None,
    executor: Executor | None = None,
) -> Factory:
    """Open the ledger and build the demand source and one provider per site."""
    from .demand.fake import FileDemand
    from .demand.htcondor import HTCondorDemand
    from .pilot.payload import GlideinBuilder
    from .providers import build_provider
    from .transport.executor import LocalExecutor

    ledger = Ledger.open(ledger_url or config.factory.ledger_url)
    demand: DemandSource = FileDemand(demand_file) if demand_file else HTCondorDemand(config.pool)
    run = executor or LocalExecutor()
    glidein = GlideinBuilder(config.pool, config.pilot, run, config.factory.name)
    providers = {s.name: build_provider(s, config.pilot, run, config.factory.name, glidein) for s in config.sites}
    return Factory(config, ledger, demand, providers)
