"""The factory's live pilots, held in memory between cycles and kept in step with its own writes.

Only the factory holding the ledger's lease writes pilot rows (operators queue requests the loop
serves), so what it wrote is what the ledger holds: the loop reads its live pilots once (one
query), then applies the records every write returns (:meth:`LivePilots.note`), instead of
reading every live pilot several times a cycle. It reads them again whenever it cannot be sure
nobody else wrote: on its first cycle, after a cycle that failed half-way, when its lease lapsed
between two cycles (another factory may have acted), and for a dry run. Each site's newest
pilots, live or ended, from which its health is judged (:meth:`LivePilots.recent`), are kept the
same way: read at first use after a load, then kept in step with the writes.

:func:`effective` drops the updates that would change nothing (a queued pilot seen pending
again), so the ledger is written, and read, only for pilots whose state or job id changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..errors import InvalidTransition
from ..ledger import LIVE, Ledger, PilotRecord, Update, next_state

__all__ = ["RECENT", "LivePilots", "effective"]

#: how many of a site's newest pilots its health is judged from
RECENT = 50


class LivePilots:
    """Live pilots of one factory by site; ``stale`` until loaded."""

    def __init__(self) -> None:
        self._sites: dict[str, dict[str, PilotRecord]] = {}
        #: pilots that ended recently (for spend ceilings), read from the ledger at first use
        self._ended: dict[str, PilotRecord] | None = None
        #: each site's ``RECENT`` newest pilots (any state), read from the ledger at first use
        self._recent: dict[str, dict[str, PilotRecord]] = {}
        self.stale = True
        self.loads = 0

    def load(self, ledger: Ledger, factory: str) -> None:
        self._sites = {}
        self._ended = None
        self._recent = {}
        self.note(ledger.live_pilots(factory))
        self.stale = False
        self.loads += 1

    def note(self, records: Iterable[PilotRecord]) -> None:
        """Take written records: live ones are kept (replacing older), ended ones dropped (and
        kept among the recently ended once those have been read)."""
        for r in records:
            site = self._sites.setdefault(r.site, {})
            if r.state in LIVE:
                site[r.pilot_id] = r
            else:
                site.pop(r.pilot_id, None)
                if self._ended is not None and r.ended_at is not None:
                    self._ended[r.pilot_id] = r
            recent = self._recent.get(r.site)
            if recent is not None:
                _keep_recent(recent, r)

    def ended_since(self, ledger: Ledger, factory: str, since: float) -> list[PilotRecord]:
        """Pilots that ended at or after ``since``: read once after a load, then kept in step
        with the writes (so the spend of the last 24 h does not cost a query of every pilot
        that ended in them each cycle)."""
        if self._ended is None:
            self._ended = {r.pilot_id: r for r in ledger.pilots_ended_since(factory, since)}
        old = [pid for pid, r in self._ended.items() if r.ended_at is None or r.ended_at < since]
        for pid in old:
            del self._ended[pid]
        return list(self._ended.values())

    def recent(self, ledger: Ledger, factory: str, site: str) -> list[PilotRecord]:
        """The site's ``RECENT`` newest pilots, newest first, as ``ledger.pilots(factory=factory,
        site=site, limit=RECENT)`` lists them: read once after a load, then kept in step with the
        writes (a new pilot is the newest; a pilot beyond the newest never comes back among them)."""
        recent = self._recent.get(site)
        if recent is None:
            recent = self._recent[site] = {
                r.pilot_id: r for r in ledger.pilots(factory=factory, site=site, limit=RECENT)
            }
        return _ordered(recent.values())

    def of_site(self, site: str) -> list[PilotRecord]:
        return _ordered(self._sites.get(site, {}).values())

    def get(self, pilot_id: str, site: str) -> PilotRecord | None:
        return self._sites.get(site, {}).get(pilot_id)

    def all(self) -> list[PilotRecord]:
        return _ordered(r for site in self._sites.values() for r in site.values())

    def __len__(self) -> int:
        return sum(len(s) for s in self._sites.values())


def _ordered(records: Iterable[PilotRecord]) -> list[PilotRecord]:
    """Newest first, as :meth:`Ledger.pilots` orders them."""
    out = sorted(records, key=lambda r: r.pilot_id)
    out.sort(key=lambda r: r.created_at, reverse=True)
    return out


def _newest_first(r: PilotRecord) -> tuple[float, str]:
    return (-r.created_at, r.pilot_id)


def _keep_recent(recent: dict[str, PilotRecord], r: PilotRecord) -> None:
    """Take a written record into a site's newest pilots: replaced when it is among them, added
    when it is newer than the oldest of them (or they are fewer than ``RECENT``: all there are)."""
    if r.pilot_id in recent or len(recent) < RECENT:
        recent[r.pilot_id] = r
        return
    oldest = max(recent.values(), key=_newest_first)
    if _newest_first(r) < _newest_first(oldest):
        del recent[oldest.pilot_id]
        recent[r.pilot_id] = r


def effective(updates: Sequence[Update], known: Mapping[str, PilotRecord]) -> list[Update]:
    """The updates that change their pilot's state or job id (unknown pilots are kept: the
    ledger then says what is wrong; so are updates the transition table refuses)."""
    out = []
    for up in updates:
        p = known.get(up.pilot_id)
        if p is not None and (up.job_id is None or up.job_id == p.job_id):
            try:
                if next_state(p.state, up.event) is p.state:
                    continue
            except InvalidTransition:
                pass
        out.append(up)
    return out
