"""Minting a pilot's IDTOKEN with only what a startd needs.

The token carries ADVERTISE_STARTD, ADVERTISE_MASTER and READ, for the site's pilot identity,
and lives as long as the pilot may wait in the queue plus its walltime. A token is a secret: it
never appears in a log line, an error message or a command's output shown to anyone; errors
from the minting command keep its stderr but never its stdout.
"""

from __future__ import annotations

import math
import re

from ..config import TokenOptions
from ..config._grammar import MAX_TOKEN_LIFETIME
from ..errors import CommandError, ProviderError
from ..transport.executor import Executor

__all__ = ["PILOT_AUTHZ", "mint_pilot_token", "pilot_identity", "token_argv"]

#: the authorizations a glidein's startd and master need, and nothing else
PILOT_AUTHZ = ("ADVERTISE_STARTD", "ADVERTISE_MASTER", "READ")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_IDENTITY = re.compile(r"[A-Za-z0-9_.*-]+@[A-Za-z0-9_.-]+")


def pilot_identity(opts: TokenOptions, site: str) -> str:
    ident = opts.identity.replace("{site}", site)
    if not _IDENTITY.fullmatch(ident):
        raise ProviderError(f"pilot token identity {ident!r} is not of the form user@domain", site=site)
    return ident


def token_argv(opts: TokenOptions, site: str, lifetime_s: float) -> list[str]:
    if not (math.isfinite(lifetime_s) and 0 < lifetime_s <= MAX_TOKEN_LIFETIME):
        raise ProviderError(
            f"{site}: a pilot token lifetime of {lifetime_s:.0f} s is out of bounds "
            f"(at most {MAX_TOKEN_LIFETIME / 86400:.0f} days: walltime + pilot.token.queue_allowance)",
            site=site,
        )
    argv = [*opts.command, "-identity", pilot_identity(opts, site)]
    for authz in PILOT_AUTHZ:
        argv += ["-authz", authz]
    argv += ["-lifetime", str(int(lifetime_s))]
    if opts.key:
        argv += ["-key", opts.key]
    return argv


async def mint_pilot_token(executor: Executor, opts: TokenOptions, site: str, lifetime_s: float) -> str:
    """A fresh token for ``site``'s pilots (its text; the caller keeps it out of every log)."""
    argv = token_argv(opts, site, lifetime_s)
    try:
        result = await executor.run(argv, timeout=opts.timeout, env=opts.environment or None)
    except CommandError as exc:
        raise ProviderError(f"{site}: cannot mint a pilot token: {exc.stderr.strip() or exc}", site=site) from None
    if result.returncode != 0:
        raise ProviderError(
            f"{site}: cannot mint a pilot token: {' '.join(argv[:1])} exited {result.returncode}: "
            f"{result.stderr.strip()[-1000:]}",
            site=site,
        )
    token = result.stdout.strip()
    if not _TOKEN.fullmatch(token):
        raise ProviderError(f"{site}: the minting command printed something that is not a token", site=site)
    return token
