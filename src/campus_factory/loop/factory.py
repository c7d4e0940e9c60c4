"""The loop: observe → plan → act → record, every cycle, idempotently.

Observe reads idle job groups, the pilots' slots in the pool and every site's pilots (one query
per site); :mod:`.reconcile` turns what they report into ledger events, adopting jobs submitted
just before a crash and cancelling strangers that carry our tag. Plan is the pure planner, fed
by the sites as operators adjusted them (``site scale``, pause, drain) and cut to the spend
ceilings. Act submits and cancels through the providers, writing ``requested`` rows before a
submission reaches a site, so a crash can never make a pilot unknown. A site that fails affects
only itself: it is marked unhealthy for the cycle and the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from ..config import CLOUD_PROVIDERS, Config, SiteConfig
from ..demand.base import DemandSource
from ..domain import JobGroup
from ..errors import CampusFactoryError, DemandError, PoolError, ProviderError
from ..ledger import LIVE, CycleRecord, Ledger, PilotEvent, PilotRecord, Update
from ..ledger.controls import site_controls
from ..ledger.overrides import get_overrides
from ..logs import log_cycle
from ..planner import PilotView, Plan, SiteSpec, plan
from ..planner.inputs import pilot_views, site_health_of, site_specs
from ..planner.match import MatchCache
from ..planner.reuse import with_running_jobs
from ..pool.base import LearnedAds, PilotSlot, PoolView, by_pilot, started_at
from ..pool.offline import OfflineAdPublisher, publish_site_ads
from ..providers.base import Provider
from .act import act_site, leave
from .adjust import apply_budget, effective_sites, has_ceiling
from .arrivals import ArrivalTracker
from .drains import serve_drain_requests
from .guard import guarded
from .idle import IdleTracker
from .instance_types import InstanceTypes
from .lease import LeaseKeeper
from .live import LivePilots, effective
from .reconcile import ReadMemory, reconcile, tag_pattern
from .report import CycleReport
from .runtimes import RuntimeLearner
from .usage import JobTracker

__all__ = ["CycleReport", "Factory", "PlanFn"]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")
PlanFn = Callable[[Sequence[JobGroup], Sequence[SiteSpec], Sequence[PilotView], float], Plan]


class Factory:
    """One factory process: its config, ledger, demand source and one provider per site."""

    def __init__(
        self,
        config: Config,
        ledger: Ledger,
        demand: DemandSource,
        providers: Mapping[str, Provider],
        *,
        pool: PoolView | None = None,
        offline: OfflineAdPublisher | None = None,
        jobs: JobTracker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.demand = demand
        self.providers = providers
        self.pool = pool
        self.offline = offline
        self.jobs = jobs
        self.clock = clock
        self.name = config.factory.name
        self.tag_prefix = f"cf-{self.name}-"
        self._tag = tag_pattern(self.tag_prefix)
        self._slots: dict[str, PilotSlot] = {}
        self._joined: dict[str, str] = {}  # pilot id -> its startd's name, this cycle
        self._joined_at: dict[str, float] = {}  # pilot id -> when its startd started
        self._pool_ok = False
        self._first_seen: dict[str, float] = {}  # strangers at cloud sites, by job id
        self._reads: dict[str, ReadMemory] = {}  # what earlier reads of each site said
        #: when each pilot's last job ended, so idle timeouts run from there (not from joined)
        self.idle = IdleTracker()
        #: how fast each job group's jobs arrive, for the planner's warm buffer
        self.arrivals = ArrivalTracker()
        #: each job group's runtime, learned from its recorded runs (and which group each idle job is in)
        self.runtimes = RuntimeLearner()
        #: parsed slot ads and match results, kept across cycles (the plan stays pure)
        self.match_cache = MatchCache()
        #: the shapes of cloud sites' instance types, read once and again after their TTL
        self.instance_types = InstanceTypes()
        #: the latest real startd ad of each site's pilots refines its slot ad
        self.learned = LearnedAds()
        #: one acting factory per name on a ledger
        self.lease = LeaseKeeper(ledger, self.name, 1.5 * config.factory.cycle_interval)
        #: live pilots in memory, kept in step with this factory's writes (see loop.live)
        self.live = LivePilots()

    @property
    def holder(self) -> str:
        """Who this process is when it takes the ledger's lease."""
        return self.lease.holder

    @holder.setter
    def holder(self, value: str) -> None:
        self.lease.holder = value

    def _take_lease(self) -> bool:
        """Take or renew the ledger's lease (:mod:`.lease`); when it had lapsed, the live pilots
        are read again (another factory may have acted in between)."""
        held, lapsed = self.lease.take(self.clock())
        if held and lapsed:
            self.live.stale = True
        return held

    def _apply(self, updates: Sequence[Update], now: float, known: Sequence[PilotRecord] = ()) -> list[PilotRecord]:
        """Write the updates that change something; the live pilots in memory follow."""
        todo = effective(updates, {p.pilot_id: p for p in known}) if known else list(updates)
        changed = self.ledger.apply(todo, now) if todo else []
        self.live.note(changed)
        return changed

    # -- hooks a simulator overrides ------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh 10-hex-digit id for a submission or a pilot."""
        return uuid.uuid4().hex[:10]

    def make_plan(
        self, groups: Sequence[JobGroup], specs: Sequence[SiteSpec], views: Sequence[PilotView], now: float
    ) -> Plan:
        return plan(groups, specs, views, now, cache=self.match_cache)

    async def blocking(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """A blocking read (demand, pool slots, job runs), in a thread off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- observe ----------------------------------------------------------------------------
    async def _observe_pool(self, report: CycleReport) -> None:
        self._slots, self._joined, self._joined_at, self._pool_ok = {}, {}, {}, False
        if self.pool is None:
            return
        try:
            slots = await self.blocking(self.pool.pilot_slots)
        except PoolError as exc:
            report.errors.append(f"pool: {exc}")
            log.warning("cannot read pilot slots from the pool: %s", exc)
            return
        self._slots, self._pool_ok = by_pilot(slots), True
        self._joined = {pid: s.name for pid, s in self._slots.items()}
        self._joined_at = {pid: t for pid, s in self._slots.items() if (t := started_at(s)) is not None}
        if self.jobs is not None:
            live = self.live.all()
            try:
                await self.blocking(
                    self.jobs.update,
                    self.ledger,
                    self.name,
                    self.clock(),
                    generation=self.live.loads,
                    live={p.pilot_id for p in live},
                    since=min((p.started_at or p.created_at for p in live), default=None),
                    group_of=self.runtimes.groups.group_of,
                )
            except PoolError as exc:
                report.errors.append(f"pool jobs: {exc}")
            if self.jobs.ended_runs:  # the runtimes learned from those groups' runs may change
                self.runtimes.ended(self.jobs.ended_groups)
            # a pilot running a job is busy even while its partitionable slot's ad lags the claim
            busy = self.jobs.busy_pilots
            self._slots = {p: s if s.busy or p not in busy else replace(s, busy=True) for p, s in self._slots.items()}
        self.idle.observe(self._slots, self.clock())
        self.learned.update(self._slots.values())

    async def _observe_site(self, site: SiteConfig, report: CycleReport) -> None:
        provider = self.providers[site.name]
        live = self.live.of_site(site.name)
        obs = await provider.observe(sorted(p.job_id for p in live if p.job_id), self.tag_prefix)
        now = self.clock()
        cloud = site.provider in CLOUD_PROVIDERS
        known = {p.job_id for p in live}
        # a stranger still queued or running whose pilot already ended is garbage (see reconcile):
        # only those submissions are read, not every one a finished job still lists
        subs = {
            m.group(1)
            for st in obs.tagged
            if st.job_id not in known and not st.state.finished and (m := self._tag.match(st.tag))
        }
        ended = {
            (p.submission_id, p.array_index): p
            for p in self.ledger.pilots_of_submissions(self.name, subs)
            if p.state not in LIVE
        }
        joins = self._pool_ok and self.config.joins_pool(site)
        result = reconcile(
            live,
            obs,
            self._tag,
            now,
            joined=self._joined,
            joined_at=self._joined_at,
            submission_grace=self.config.factory.submission_grace,
            stranger_grace=site.cloud.orphan_grace if cloud else 0.0,
            first_seen=self._first_seen,
            join_timeout=site.cloud.join_timeout if cloud and joins else None,
            ended=ended,
            memory=self._reads.setdefault(site.name, ReadMemory()),
        )
        if result.failed_read:
            raise ProviderError(result.failed_read, site=site.name)
        self._apply(result.updates, now, live)
        report.adopted += result.adopted
        if result.strangers:
            log.warning("%s: cancelling job(s) with our tag unknown to the ledger: %s", site.name, result.strangers)
            done = await provider.cancel(result.strangers, graceful=False)
            report.orphans_cancelled += sum(1 for r in done if r.ok)
            for r in done:
                self._first_seen.pop(r.job_id, None)
        if result.black_holes:
            holes = {p.job_id: p for p in result.black_holes if p.job_id}
            done = await provider.cancel(list(holes), graceful=False)
            self._apply(
                [Update(holes[r.job_id].pilot_id, PilotEvent.LEAVE, "never joined the pool") for r in done if r.ok],
                self.clock(),
            )

    # -- act (loop.act) ---------------------------------------------------------------------
    async def _leave(self, site: str, pilots: Sequence[tuple[PilotRecord, str]], graceful: bool) -> int:
        """Ask pilots to leave (or remove them); returns how many the site accepted."""
        return await leave(self, site, pilots, graceful)

    async def _operator_requests(self, report: CycleReport) -> None:
        """Drain requests queued by operators (API): ask each pilot to leave, once."""
        errors = await serve_drain_requests(self.ledger, self.name, set(self.providers), self._leave, self.clock)
        report.errors += errors

    # -- the cycle --------------------------------------------------------------------------
    async def _site_specs(
        self, sites: Sequence[SiteConfig], now: float, unhealthy: Mapping[str, str], dry_run: bool, report: CycleReport
    ) -> list[SiteSpec]:
        health = {
            s.name: site_health_of(
                s, self.live.recent(self.ledger, self.name, s.name), now, joins_observed=self._pool_ok
            )
            for s in sites
        }
        offline: dict[str, int] = {}
        if self.offline is not None and not dry_run:
            try:
                offline = await self.blocking(self.offline.matched, now)
            except PoolError as exc:
                report.errors.append(f"offline ads: {exc}")
        learned = {s.name: ad for s in sites if (ad := self.learned.get(s.name)) is not None}
        types = self.instance_types.current()
        return site_specs(
            sites, learned=learned, health=health, unhealthy=unhealthy, offline=offline, instance_types=types
        )

    async def _read_types(self, site: SiteConfig, unhealthy: dict[str, str], report: CycleReport) -> None:
        """The site's instance types' shapes, when due; a site with none known gets no action."""
        before, cache = len(report.errors), self.instance_types
        refresh = lambda: cache.refresh(site, self.providers[site.name], self.clock())  # noqa: E731
        if (
            cache.needed(site)
            and not await guarded(site, refresh, "reading instance types", report)
            and not cache.known(site)
        ):
            unhealthy.setdefault(site.name, report.errors[before].split(": ", 1)[-1][:200])

    async def _publish_offline(self, specs: Sequence[SiteSpec], report: CycleReport) -> None:
        if self.offline is not None:
            report.errors += await publish_site_ads(self.offline, specs, [s.name for s in self.config.sites])

    def _views(self, live: Sequence[PilotRecord], now: float) -> list[PilotView]:
        margins = {s.name: min(s.batch.term_margin, s.walltime / 2) for s in self.config.sites}
        slots = self._slots if self._pool_ok else None
        by_site: dict[str, list[PilotRecord]] = {}
        for p in live:
            by_site.setdefault(p.site, []).append(p)
        views = {
            site: iter(pilot_views(records, slots, retire_margin_s=margins.get(site, 0.0)))
            for site, records in by_site.items()
        }
        return self.idle.apply((next(views[p.site]) for p in live), now)  # in the order of ``live``

    async def run_once(self, *, dry_run: bool = False, demand: Sequence[JobGroup] | None = None) -> CycleReport:
        started = time.monotonic()
        report = CycleReport(started_at=self.clock(), dry_run=dry_run)
        if not dry_run and not self._take_lease():
            report.standby = True  # another factory of this name acts on this ledger
            report.duration_s = time.monotonic() - started
            return report
        if dry_run or self.live.stale:
            self.live.load(self.ledger, self.name)
        self.live.stale = True  # until this cycle ends well: a failure half-way reads them again
        sites = effective_sites(
            self.config.sites, get_overrides(self.ledger, self.name), site_controls(self.ledger, self.name)
        )
        try:
            groups = list(demand) if demand is not None else await self.blocking(self.demand.idle_groups)
            demand_ok = True
        except DemandError as exc:
            groups, demand_ok = [], False
            report.errors.append(f"demand: {exc}")
            log.warning("cannot read demand, no pilots are started or cancelled: %s", exc)
        self.runtimes.groups.observe(groups)  # before the pool: a job seen idle now may start any moment
        unhealthy: dict[str, str] = {}
        if not dry_run:
            await self._operator_requests(report)
            await self._observe_pool(report)

            async def observe(site: SiteConfig) -> None:
                before = len(report.errors)
                if not await guarded(site, lambda: self._observe_site(site, report), "observe", report):
                    unhealthy[site.name] = report.errors[before].split(": ", 1)[-1][:200]

            await asyncio.gather(*(observe(s) for s in sites))
        await asyncio.gather(*(self._read_types(s, unhealthy, report) for s in sites))
        if not demand_ok:
            unhealthy = {s.name: "demand unreadable" for s in sites}
        now = self.clock()
        if not dry_run:
            groups = self.arrivals.observe(groups, now)
        groups = self.runtimes.learned_for(groups, self.ledger, self.name, now, generation=self.live.loads)
        if self.jobs is not None and not dry_run:
            groups = with_running_jobs(groups, self.jobs.running_by_group())
        specs = await self._site_specs(sites, now, unhealthy, dry_run, report)
        live = self.live.all()
        report.plan = self.make_plan(groups, specs, self._views(live, now), now)
        types = self.instance_types.current()
        if has_ceiling(self.config, sites, types):  # spend ceilings only matter where pilots cost
            spent = [*live, *self.live.ended_since(self.ledger, self.name, now - 86400)]
            report.plan = apply_budget(report.plan, self.config, sites, spent, now, types)
        plan_dict = report.plan.to_dict()  # once: it is logged and recorded
        if not dry_run:
            current = report.plan

            async def act(site: SiteConfig) -> None:
                await guarded(site, lambda: act_site(self, site, current, report), "act", report)

            await asyncio.gather(*(act(s) for s in sites if s.name not in unhealthy))
            await self._publish_offline(specs, report)
        report.duration_s = time.monotonic() - started
        n = {"submitted": report.submitted, "cancelled": report.cancelled, "errors": len(report.errors)}
        log_cycle(log, plan_dict, **n, duration_s=report.duration_s, dry_run=dry_run)
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
                    plan_dict,
                )
            )
        self.live.stale = dry_run
        return report

    async def run_forever(
        self, stop: asyncio.Event, *, dry_run: bool = False, on_cycle: Callable[[CycleReport], None] | None = None
    ) -> None:
        """Cycle every ``cycle_interval`` seconds until ``stop`` is set."""
        interval = self.config.factory.cycle_interval
        try:
            while not stop.is_set():
                begun = time.monotonic()
                standby = False
                try:
                    report = await self.run_once(dry_run=dry_run)
                except CampusFactoryError as exc:  # the loop never dies of one bad cycle
                    log.error("cycle failed: %s", exc)
                except Exception:  # nor of a bug: logged with its traceback, retried next cycle
                    log.exception("cycle failed unexpectedly")
                else:
                    standby = report.standby
                    if on_cycle is not None:
                        on_cycle(report)
                # a standby tries the lease twice a cycle, so it takes over within two cycles
                period = interval / 2 if standby else interval
                wait = max(0.0, period - (time.monotonic() - begun))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            if not dry_run:
                with contextlib.suppress(CampusFactoryError, SQLAlchemyError):
                    self.lease.release()
