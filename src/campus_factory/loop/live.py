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

import bisect
from collections.abc import Iterable, Mapping, Sequence

from ..errors import InvalidTransition
from ..ledger import LIVE, Ledger, PilotRecord, Update, next_state

__all__ = ["RECENT", "LivePilots", "effective"]

#: how many of a site's newest pilots its health is judged from
RECENT = 50


class _Newest:
    """Pilot records by id, kept newest first as :meth:`Ledger.pilots` orders them (created, then
    pilot id), so that listing them needs no sort; at most ``cap`` (the newest), when given."""

    __slots__ = ("cap", "keys", "records")

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap
        self.records: dict[str, PilotRecord] = {}
        self.keys: list[tuple[float, str]] = []  # (-created_at, pilot_id), ascending

    def put(self, r: PilotRecord) -> None:
        old = self.records.get(r.pilot_id)
        if old is not None and old.created_at == r.created_at:
            self.records[r.pilot_id] = r
            return
        if old is not None:
            self.drop(r.pilot_id)
        key = (-r.created_at, r.pilot_id)
        if self.cap is not None and len(self.keys) >= self.cap:
            if key > self.keys[-1]:  # older than the oldest kept: not among the newest
                return
            del self.records[self.keys.pop()[1]]
        bisect.insort(self.keys, key)
        self.records[r.pilot_id] = r

    def drop(self, pilot_id: str) -> None:
        r = self.records.pop(pilot_id, None)
        if r is not None:
            del self.keys[bisect.bisect_left(self.keys, (-r.created_at, pilot_id))]

    def ordered(self) -> list[PilotRecord]:
        return [self.records[pid] for _, pid in self.keys]


class LivePilots:
    """Live pilots of one factory by site; ``stale`` until loaded."""

    def __init__(self) -> None:
        self._sites: dict[str, _Newest] = {}
        self._all = _Newest()
        #: pilots that ended recently (for spend ceilings), read from the ledger at first use
        self._ended: dict[str, PilotRecord] | None = None
        #: each site's ``RECENT`` newest pilots (any state), read from the ledger at first use
        self._recent: dict[str, _Newest] = {}
        self.stale = True
        self.loads = 0

    def load(self, ledger: Ledger, factory: str) -> None:
        self._sites, self._all = {}, _Newest()
        self._ended = None
        self._recent = {}
        self.note(ledger.live_pilots(factory))
        self.stale = False
        self.loads += 1

    def note(self, records: Iterable[PilotRecord]) -> None:
        """Take written records: live ones are kept (replacing older), ended ones dropped (and
        kept among the recently ended once those have been read)."""
        for r in records:
            site = self._sites.get(r.site)
            if site is None:
                site = self._sites[r.site] = _Newest()
            if r.state in LIVE:
                site.put(r)
                self._all.put(r)
            else:
                site.drop(r.pilot_id)
                self._all.drop(r.pilot_id)
                if self._ended is not None and r.ended_at is not None:
                    self._ended[r.pilot_id] = r
            recent = self._recent.get(r.site)
            if recent is not None:  # a new pilot is the newest; one beyond the newest never comes back
                recent.put(r)

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
        writes."""
        recent = self._recent.get(site)
        if recent is None:
            recent = self._recent[site] = _Newest(RECENT)
            for r in ledger.pilots(factory=factory, site=site, limit=RECENT):
                recent.put(r)
        return recent.ordered()

    def of_site(self, site: str) -> list[PilotRecord]:
        pilots = self._sites.get(site)
        return pilots.ordered() if pilots is not None else []

    def get(self, pilot_id: str, site: str) -> PilotRecord | None:
        pilots = self._sites.get(site)
        return pilots.records.get(pilot_id) if pilots is not None else None

    def all(self) -> list[PilotRecord]:
        return self._all.ordered()

    def __len__(self) -> int:
        return len(self._all.records)


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
