"""One site's work in a cycle, bounded and contained: a site that hangs or fails harms only itself.

Each site's observe and act run under a timeout derived from its own command or API timeouts;
a timeout, a campus-factory error or an unexpected exception (a provider bug, logged with its
traceback) becomes that site's error for the cycle, and the loop goes on with the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..config import CLOUD_PROVIDERS, SiteConfig
from ..errors import CampusFactoryError
from .report import CycleReport

__all__ = ["guarded", "site_timeout"]

log = logging.getLogger("campus_factory.loop.factory")


def site_timeout(site: SiteConfig) -> float:
    """The longest one site's observe or act may take: four of its slowest calls, at least 60 s."""
    if site.provider in CLOUD_PROVIDERS:
        return max(60.0, 4 * site.cloud.request_timeout * site.cloud.max_attempts)
    return max(60.0, 4 * site.batch.command_timeout)


async def guarded(site: SiteConfig, coro_fn: Callable[[], Awaitable[None]], what: str, report: CycleReport) -> bool:
    """Run ``coro_fn`` for ``site``; False (and the error in ``report``) when it failed."""
    timeout = site_timeout(site)
    try:
        await asyncio.wait_for(coro_fn(), timeout)
        return True
    except TimeoutError:
        msg = f"{site.name}: {what} took longer than {timeout:g} s"
    except CampusFactoryError as exc:
        msg = f"{site.name}: {what} failed: {exc}"
    except Exception as exc:  # a provider bug harms only its site, never the loop
        log.exception("%s: %s raised an unexpected error", site.name, what)
        msg = f"{site.name}: {what} failed unexpectedly: {type(exc).__name__}: {exc}"
    log.warning("%s", msg)
    report.errors.append(msg)
    return False
