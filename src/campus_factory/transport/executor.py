"""The one way campus-factory runs an external command.

Commands are argument lists, never shell strings; every call has a timeout; the result keeps
argv, exit code, stdout and stderr, and so does every error raised from it. Providers receive an
:class:`Executor` (this host, or later an SSH connection) instead of spawning processes themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import CommandError, CommandTimeout

__all__ = ["CommandResult", "Executor", "LocalExecutor"]


@dataclass(frozen=True)
class CommandResult:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self, *, site: str | None = None, message: str | None = None) -> CommandResult:
        """Return self when the command succeeded, else raise :class:`CommandError`."""
        if self.returncode != 0:
            raise CommandError(self.argv, self.returncode, self.stdout, self.stderr, site=site, message=message)
        return self


class Executor(Protocol):
    """Runs one command; implementations: :class:`LocalExecutor`, SSH (later), fakes in tests."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult: ...


def _validate_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str) or not argv:
        raise TypeError("argv must be a non-empty sequence of strings, not a shell string")
    out = tuple(argv)
    for arg in out:
        if not isinstance(arg, str):
            raise TypeError(f"argv items must be strings, got {type(arg).__name__}")
        if "\x00" in arg:
            raise ValueError("argv items cannot contain NUL bytes")
    return out


class LocalExecutor:
    """Runs commands on this host with :mod:`asyncio` subprocesses.

    ``env`` entries are added to this process's environment. On timeout the whole process
    group is killed and :class:`CommandTimeout` carries whatever output arrived.
    """

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        args = _validate_argv(argv)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        full_env = {**os.environ, **env} if env else None
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=full_env,
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(args, None, "", str(exc), message=f"cannot run {args[0]}") from exc
        data = stdin.encode() if stdin is not None else None
        communicate = asyncio.ensure_future(proc.communicate(data))
        try:
            out, err = await asyncio.wait_for(asyncio.shield(communicate), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, err = await asyncio.wait_for(communicate, 5)
            except TimeoutError:
                out, err = b"", b""
            raise CommandTimeout(args, timeout, out.decode(errors="replace"), err.decode(errors="replace")) from None
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(communicate, 5)  # reap the killed process
            raise
        return CommandResult(
            argv=args,
            returncode=proc.returncode if proc.returncode is not None else -1,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            duration=time.monotonic() - started,
        )
