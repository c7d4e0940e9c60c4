"""``doctor``: can a glidein be matched again before its idle timeout makes it leave?

A glidein's startd leaves when none of its slots has been claimed for ``STARTD_NOCLAIM_SHUTDOWN``
seconds (the site's ``idle_timeout``, or ``pilot.extra_config``). HTCondor 25 checks that once per
``UPDATE_INTERVAL`` (``pilot.update_interval``) and counts from the last check that saw a claim, or
from the startd's start (``ResMgr::check_use``), so a glidein may leave as little as
``idle_timeout - update_interval`` seconds after its last claim ended. An unclaimed slot is
matched at the negotiator's next cycle, up to ``NEGOTIATOR_INTERVAL`` seconds later. When the
first is not longer than the second, a job queued behind busy glideins that cannot take a
finishing job's claim (another submitter's, or one larger than the claimed slot) may wait while
the glidein it fits leaves, and a new glidein may leave before its first match.

:func:`idle_timeout_checks` is the verdict (pure); :func:`idle_checks` reads the negotiator's
interval through a :class:`~.doctor_io.Doctor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import Config, SiteConfig
from .doctor import Check

if TYPE_CHECKING:
    from .doctor_io import Doctor

__all__ = ["HTCONDOR_NEGOTIATOR_INTERVAL", "idle_checks", "idle_timeout_checks", "noclaim_shutdown"]

#: HTCondor's default NEGOTIATOR_INTERVAL, assumed when the negotiator cannot be asked
HTCONDOR_NEGOTIATOR_INTERVAL = 60.0


def noclaim_shutdown(config: Config, site: SiteConfig) -> float:
    """The glidein's STARTD_NOCLAIM_SHUTDOWN: ``pilot.extra_config``'s, else the site's idle_timeout."""
    for name, value in config.pilot.extra_config.items():
        if name.lower() == "startd_noclaim_shutdown":
            try:
                return float(value)
            except ValueError:
                break  # an expression: judged by the site's idle_timeout
    return float(int(site.idle_timeout))


def idle_timeout_checks(
    config: Config, sites: Sequence[SiteConfig], negotiator_interval: float | None, error: str = ""
) -> list[Check]:
    """One check per glidein site: its shortest idle stay against the negotiator's interval
    (``None``: unknown, HTCondor's default is assumed and said)."""
    update = float(config.pilot.update_interval)
    known = negotiator_interval is not None
    interval = negotiator_interval if negotiator_interval is not None else HTCONDOR_NEGOTIATOR_INTERVAL
    source = (
        f"NEGOTIATOR_INTERVAL = {interval:g} s"
        if known
        else f"NEGOTIATOR_INTERVAL assumed {interval:g} s, HTCondor's default ({error or 'not read'})"
    )
    out = []
    for site in sites:
        if not config.joins_pool(site):
            continue
        name = f"idle timeout [{site.name}]"
        timeout = noclaim_shutdown(config, site)
        if timeout <= 0:
            out.append(Check(name, "ok", "STARTD_NOCLAIM_SHUTDOWN is 0: glideins never leave for being idle"))
            continue
        shortest = timeout - update
        if shortest > interval:
            out.append(
                Check(
                    name,
                    "ok",
                    f"an idle glidein stays at least {shortest:g} s (idle_timeout {timeout:g} s less "
                    f"pilot.update_interval {update:g} s), longer than a negotiation cycle ({source})",
                )
            )
            continue
        out.append(
            Check(
                name,
                "warn",
                f"a glidein may leave {max(shortest, 0):g} s after its last claim ended (idle_timeout "
                f"{timeout:g} s, checked every pilot.update_interval = {update:g} s), before the "
                f"negotiator's next cycle can match it ({source}): jobs that fit it can wait while it "
                "leaves, and a new glidein can leave before its first match",
                f"Raise sites[].idle_timeout (or pilot.extra_config STARTD_NOCLAIM_SHUTDOWN) above "
                f"{interval + update:g} s (NEGOTIATOR_INTERVAL + pilot.update_interval), or lower "
                "pilot.update_interval.",
            )
        )
    return out


async def idle_checks(doc: Doctor, sites: Sequence[SiteConfig]) -> list[Check]:
    """:func:`idle_timeout_checks` with the interval the pool's negotiator runs with."""
    sites = [s for s in sites if doc.config.joins_pool(s)]
    if not sites:
        return []
    address, error = await doc.negotiator_address()
    value, error = await doc.remote_knob(address, "NEGOTIATOR_INTERVAL") if address else (None, error)
    interval: float | None = None
    if value == "":
        interval = HTCONDOR_NEGOTIATOR_INTERVAL  # not set: the default, which is known
    elif value is not None:
        try:
            interval = float(value)
        except ValueError:
            error = f"NEGOTIATOR_INTERVAL is {value!r}"
    return idle_timeout_checks(doc.config, sites, interval, error)
