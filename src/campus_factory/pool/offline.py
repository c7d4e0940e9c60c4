"""HTCondor-native offline ads: each site's slot ad published in the collector.

Facts this follows (lab/htcondor-pilots.md §4): any startd ad with ``Offline = True`` can be
matched; the negotiator then merges ``MachineLastMatchTime`` and ``OfflineMatches`` into it,
every cycle while a matching job stays idle — that is the demand signal read back by
:func:`offline_requests`. The ad must carry ``CondorVersion`` (condor_submit's default
Requirements call ``versionGE`` on it); it needs ``ClassAdLifetime`` or it is dropped as stale
after 15 min, yet stays in the persistent log, so removal goes through ``INVALIDATE_STARTD_ADS``.
Its Name is unique per site and differs from real pilots, so the pool must rank offline ads last
(``pilot.poolconfig.PRE_JOB_RANK``). A real pilot with the same Name would replace the ad; it
must then be re-advertised, which publishing every cycle does.

Building ads and reading matches is pure; :class:`OfflineAdPublisher` is the only part that
talks to a collector (through ``htcondor2``), tested later against a personal pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..classads import ad_from_attributes, literal
from ..config import PoolOptions
from ..errors import PoolError
from ..planner.types import SiteSpec, SlotAd

__all__ = [
    "OfflineAdPublisher",
    "condor_advertise_argv",
    "invalidate_attributes",
    "offline_ad_attributes",
    "offline_ad_name",
    "offline_requests",
    "old_format",
    "publish_site_ads",
]


OFFLINE_ADDRESS = "<127.0.0.1:0?addrs=127.0.0.1-0+[--1]-0&noUDP>"


def offline_ad_name(factory: str, site: str) -> str:
    return f"offline-{factory}-{site}"


def offline_ad_attributes(
    slot: SlotAd, *, factory: str, site: str, lifetime_s: float = 3600.0
) -> list[tuple[str, str]]:
    """The offline startd ad of a site: its slot ad, renamed, with Offline and a lifetime."""
    name = offline_ad_name(factory, site)
    own = {
        "Name": literal(name),
        "Machine": literal(name),
        "Offline": "true",
        "ClassAdLifetime": str(int(lifetime_s)),
        "CampusFactoryName": literal(factory),
        "CampusFactoryOffline": "true",
        "Rank": "0",
        "Unhibernate": "MY.MachineLastMatchTime =!= undefined",
        # the negotiator does not match a partitionable offline ad (seen with 25.0): offer it
        # as one static slot of the pilot's full size
        "PartitionableSlot": "false",
        "SlotType": '"Static"',
        # the negotiator skips an ad whose MyAddress speaks neither the schedd's IPv4 nor IPv6;
        # nobody ever contacts this address (an offline ad's match is only recorded)
        "MyAddress": literal(OFFLINE_ADDRESS),
        "StartdIpAddr": literal(OFFLINE_ADDRESS),
    }
    low = {k.lower() for k in own}
    attrs = [(k, v) for k, v in slot.attributes if k.lower() not in low]
    attrs.extend(own.items())
    return attrs


def invalidate_attributes(factory: str, site: str) -> list[tuple[str, str]]:
    """The query ad that removes a site's offline ad from the collector and its persistent log."""
    name = literal(offline_ad_name(factory, site))
    return [
        ("MyType", '"Query"'),
        ("TargetType", '"Machine"'),
        ("Name", name),
        ("Requirements", f"Name == {name}"),
    ]


def old_format(attributes: Iterable[tuple[str, str]]) -> str:
    """``name = expr`` lines, the file format ``condor_advertise`` reads."""
    return "".join(f"{k} = {v}\n" for k, v in attributes)


def condor_advertise_argv(command: str, path: str) -> list[str]:
    """``condor_advertise UPDATE_STARTD_AD|INVALIDATE_STARTD_ADS FILE`` for an executor."""
    if command not in ("UPDATE_STARTD_AD", "INVALIDATE_STARTD_ADS"):
        raise ValueError(f"unexpected advertise command {command!r}")
    return ["condor_advertise", command, path]


def _get(ad: Any, name: str) -> Any:
    try:
        return ad.eval(name) if hasattr(ad, "eval") else ad.get(name)
    except Exception:
        return None


def offline_requests(ads: Iterable[Any], now: float, window_s: float, *, factory: str) -> dict[str, int]:
    """Job requests the negotiator matched to each site's offline ad within ``window_s``.

    ``ads`` are offline ads read back from the collector (ClassAds or mappings); the site is
    their CampusFactorySite. Each ``OfflineMatches`` entry adds its ``RequestCount`` (1 when
    absent); a recent match without ``OfflineMatches`` counts as one request.
    """
    out: dict[str, int] = {}
    for ad in ads:
        if _get(ad, "Offline") is not True or _get(ad, "CampusFactoryName") != factory:
            continue
        site = _get(ad, "CampusFactorySite")
        when = _get(ad, "MachineLastMatchTime")
        if not isinstance(site, str) or not isinstance(when, int | float) or isinstance(when, bool):
            continue
        if now - float(when) > window_s:
            continue
        matches = _get(ad, "OfflineMatches")
        count = 0
        if isinstance(matches, list | tuple):
            for m in matches:
                n = _get(m, "RequestCount")
                count += int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
        out[site] = out.get(site, 0) + max(count, 1)
    return out


class OfflineAdPublisher:
    """Publishes and withdraws offline ads, and reads their matches, through ``htcondor2``.

    Advertising needs a token with ADVERTISE_STARTD authorization (``_CONDOR_SEC_TOKEN_DIRECTORY``).
    """

    def __init__(self, pool: PoolOptions, factory: str) -> None:
        self.pool = pool
        self.factory = factory

    def _collector(self) -> Any:
        import htcondor2

        return htcondor2.Collector(self.pool.collector)

    def publish(self, slots: Mapping[str, SlotAd]) -> None:
        ads = [
            ad_from_attributes(
                offline_ad_attributes(slot, factory=self.factory, site=site, lifetime_s=self.pool.offline_ad_lifetime)
            )
            for site, slot in sorted(slots.items())
        ]
        try:
            self._collector().advertise(ads, "UPDATE_STARTD_AD")
        except Exception as exc:
            raise PoolError(f"cannot advertise offline ads to {self.pool.collector}: {exc}") from exc

    def withdraw(self, sites: Iterable[str]) -> None:
        ads = [ad_from_attributes(invalidate_attributes(self.factory, s)) for s in sorted(sites)]
        if not ads:
            return
        try:
            self._collector().advertise(ads, "INVALIDATE_STARTD_ADS")
        except Exception as exc:
            raise PoolError(f"cannot invalidate offline ads at {self.pool.collector}: {exc}") from exc

    def matched(self, now: float) -> dict[str, int]:
        import htcondor2

        constraint = f"Offline =?= true && CampusFactoryName == {literal(self.factory)}"
        try:
            ads = self._collector().query(htcondor2.AdType.Startd, constraint=constraint)
        except Exception as exc:
            raise PoolError(f"cannot read offline ads at {self.pool.collector}: {exc}") from exc
        return offline_requests(ads, now, self.pool.offline_match_window, factory=self.factory)


async def publish_site_ads(
    publisher: OfflineAdPublisher, specs: Sequence[SiteSpec], configured: Sequence[str]
) -> list[str]:
    """Publish the enabled sites' slot ads as offline ads, withdraw the other configured sites';
    returns the errors met (the loop goes on without offline ads)."""
    ads = {s.name: s.slot_ad for s in specs if s.enabled and s.slot_ad is not None}
    try:
        await asyncio.to_thread(publisher.publish, ads)
        gone = [name for name in configured if name not in ads]
        if gone:
            await asyncio.to_thread(publisher.withdraw, gone)
    except PoolError as exc:
        return [f"offline ads: {exc}"]
    return []
