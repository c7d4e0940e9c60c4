"""What has joined the pool: pilots' startd ads, learned slot ads, and offline ads.

I/O lives in :mod:`.htcondor` (pilot slots from the collector) and in
:class:`.offline.OfflineAdPublisher`; the rest is pure and tested without a pool.
"""

from .base import LearnedAds, PilotSlot, PoolView, by_pilot, latest_by_site, slot_from_ad
from .fake import FakePool, pilot_ad

__all__ = [
    "FakePool",
    "LearnedAds",
    "PilotSlot",
    "PoolView",
    "by_pilot",
    "latest_by_site",
    "pilot_ad",
    "slot_from_ad",
]
