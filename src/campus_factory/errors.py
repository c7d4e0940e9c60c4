"""The error hierarchy of campus-factory.

Every error the factory raises on purpose derives from :class:`CampusFactoryError`, so the CLI
can print one clear line (and a traceback only with ``-v``)::

    CampusFactoryError
    ├── ConfigError                 the config file is missing, unreadable or invalid
    ├── LedgerError                 the ledger database cannot be opened or migrated
    │   └── InvalidTransition       a pilot state change the lifecycle table does not allow
    ├── DemandError                 idle jobs could not be read from a schedd
    ├── PoolError                   the collector could not be queried
    ├── UnsafeValueError            a value would reach a script and cannot be quoted safely
    ├── NotSupportedError           a configured feature is not implemented yet
    └── ProviderError               a site's backend failed (one per adapter, chained)
        ├── CommandError            an external command failed: argv, exit code, stdout, stderr
        │   └── CommandTimeout      ... or did not finish within its timeout
        ├── SubmitError             a submission was refused or its answer was not understood
        │   ├── QuotaExceeded       ... because our quota at the site is used up ("quota")
        │   └── CapacityUnavailable ... because the site has no capacity for it now ("capacity")
        └── ThrottledError          the site's API throttled us, even after the client's retries

QuotaExceeded, CapacityUnavailable and ThrottledError (together :data:`BACKOFF_ERRORS`) mean
"back off from this site for a while"; their message says "quota", "capacity" or "throttled".

Adapters translate backend errors once, at their boundary, and chain the original
(``raise ProviderError(...) from exc``) so nothing of the cause is lost.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BACKOFF_ERRORS",
    "CampusFactoryError",
    "CapacityUnavailable",
    "CommandError",
    "CommandTimeout",
    "ConfigError",
    "DemandError",
    "InvalidTransition",
    "LedgerError",
    "NotSupportedError",
    "PoolError",
    "ProviderError",
    "QuotaExceeded",
    "SubmitError",
    "ThrottledError",
    "UnsafeValueError",
]


class CampusFactoryError(Exception):
    """Base of every error campus-factory raises on purpose."""


class ConfigError(CampusFactoryError):
    """The configuration is missing or invalid; ``problems`` lists ``(key path, reason)``."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        lines = [head] + [f"  {path}: {reason}" for path, reason in self.problems]
        return "\n".join(lines)


class LedgerError(CampusFactoryError):
    """The ledger database cannot be used."""


class InvalidTransition(LedgerError):
    """A pilot state change that the lifecycle table does not allow."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"no transition from pilot state {state!r} on event {event!r}")
        self.state = state
        self.event = event


class DemandError(CampusFactoryError):
    """Idle jobs could not be read."""


class PoolError(CampusFactoryError):
    """The pool's collector could not be queried."""


class UnsafeValueError(CampusFactoryError):
    """A value destined for a script or a command line was rejected."""


class NotSupportedError(CampusFactoryError):
    """A configured feature exists in the config schema but is not implemented yet."""


class ProviderError(CampusFactoryError):
    """A site's backend failed. ``site`` names the site when known."""

    def __init__(self, message: str, *, site: str | None = None) -> None:
        super().__init__(message)
        self.site = site


class CommandError(ProviderError):
    """An external command failed; keeps everything needed to diagnose it."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str,
        stderr: str,
        *,
        message: str | None = None,
        site: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        text = message or f"command {self.argv[0] if self.argv else '?'} exited {returncode}"
        detail = (stderr.strip() or stdout.strip())[-2000:]
        if detail:
            text = f"{text}: {detail}"
        super().__init__(text, site=site)


class CommandTimeout(CommandError):
    """An external command did not finish in time and was killed."""

    def __init__(
        self,
        argv: Sequence[str],
        timeout: float,
        stdout: str = "",
        stderr: str = "",
        *,
        site: str | None = None,
    ) -> None:
        self.timeout = timeout
        name = argv[0] if argv else "?"
        super().__init__(
            argv,
            None,
            stdout,
            stderr,
            message=f"command {name} timed out after {timeout:g} s",
            site=site,
        )


class SubmitError(ProviderError):
    """A submission was refused, or its answer could not be understood."""


class _BackoffMixin:
    kind = ""

    def _text(self, message: str) -> str:
        return message if self.kind in message.lower() else f"{self.kind}: {message}"


class QuotaExceeded(SubmitError, _BackoffMixin):
    """The site refused the submission because our quota there is used up: back off."""

    kind = "quota"

    def __init__(self, message: str, *, site: str | None = None, code: str = "") -> None:
        super().__init__(self._text(message), site=site)
        self.code = code


class CapacityUnavailable(SubmitError, _BackoffMixin):
    """The site has no capacity for the request right now (e.g. no such instances left): back off."""

    kind = "capacity"

    def __init__(self, message: str, *, site: str | None = None, code: str = "") -> None:
        super().__init__(self._text(message), site=site)
        self.code = code


class ThrottledError(ProviderError, _BackoffMixin):
    """The site's API throttled us (after the client library's own retries): back off."""

    kind = "throttled"

    def __init__(self, message: str, *, site: str | None = None, code: str = "") -> None:
        super().__init__(self._text(message), site=site)
        self.code = code


BACKOFF_ERRORS: tuple[type[ProviderError], ...] = (QuotaExceeded, CapacityUnavailable, ThrottledError)
"""Errors after which the loop should back off from the site (and only that site)."""
