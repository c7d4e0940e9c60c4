"""Running a site's commands on a remote login node over SSH (asyncssh).

One :class:`SSHExecutor` per site keeps one connection and opens a channel per command, so the
cost of a command is a round trip, not a handshake. The server's host key is always checked,
against ``known_hosts`` (default ``~/.ssh/known_hosts``). A connection that dies is dropped and
opened again on the next command; when opening fails, further attempts wait out a backoff that
doubles up to ``backoff_max``, and commands fail at once meanwhile (the site is isolated, nothing
blocks). A command is never re-run once it may have started; only a channel that could not even
be opened on a stale connection is retried once on a fresh one.

The argument list is joined with :func:`shlex.join` and run by the remote user's login shell,
which must be a POSIX shell. ``env`` becomes an ``env NAME=value`` prefix (sshd drops the SSH
protocol's environment requests unless AcceptEnv allows them). sshd starts each command as a
session leader, and the command first reports its pid on stderr (stripped from the result): on
timeout its whole process group is killed with ``kill -KILL -- -PID`` on a second channel, since
OpenSSH ignores signal requests and closing a channel does not stop a command that never writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence

import asyncssh

from ..config import TransportOptions
from ..errors import CommandError, CommandTimeout
from .executor import CommandResult, _validate_argv

__all__ = ["SSHExecutor", "remote_command"]

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PID_LINE = re.compile(r"^CFPID:(\d+)\n?", re.MULTILINE)  # login scripts may print before it
_STALE = (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionError)


def remote_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The command line sent to the server: ``echo CFPID:$$ >&2; exec [env K=V ...] argv``."""
    args = list(_validate_argv(argv))
    if env:
        for name in env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
        args = ["env", *(f"{k}={v}" for k, v in env.items()), *args]
    return "echo CFPID:$$ >&2; exec " + shlex.join(args)


class _Client(asyncssh.SSHClient):
    def __init__(self, on_lost: Callable[[asyncssh.SSHClientConnection], None]) -> None:
        self._on_lost = on_lost
        self._conn: asyncssh.SSHClientConnection | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._on_lost(self._conn)


class SSHExecutor:
    """Runs commands on ``options.host`` over one reused SSH connection."""

    def __init__(
        self,
        options: TransportOptions,
        *,
        site: str | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options.kind != "ssh" or not options.host:
            raise ValueError("SSHExecutor needs transport options of kind 'ssh' with a host")
        self.options = options
        self.site = site
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.clock = clock
        self.connects = 0  # connections opened so far (for tests and metrics)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""

    @property
    def target(self) -> str:
        user = f"{self.options.user}@" if self.options.user else ""
        return f"{user}{self.options.host}:{self.options.port}"

    # -- the connection -----------------------------------------------------------------------
    def _lost(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            log.info("ssh %s: connection lost", self.target)
            self._conn = None

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        self._lost(conn)
        conn.close()

    async def _connection(self, args: tuple[str, ...]) -> asyncssh.SSHClientConnection:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a connection (and a lock) cannot outlive its event loop
            self._loop, self._conn, self._lock = loop, None, asyncio.Lock()
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            wait = self._retry_at - self.clock()
            if wait > 0:
                raise CommandError(
                    args,
                    None,
                    "",
                    self._last_error,
                    message=f"ssh {self.target}: down, next connection attempt in {wait:.1f} s",
                    site=self.site,
                )
            opts = self.options
            try:
                conn, _ = await asyncio.wait_for(
                    asyncssh.create_connection(
                        lambda: _Client(self._lost),
                        opts.host,
                        port=opts.port,
                        username=opts.user,
                        client_keys=[opts.key_file] if opts.key_file else (),
                        known_hosts=opts.known_hosts if opts.known_hosts else (),
                        connect_timeout=opts.connect_timeout,
                        keepalive_interval=30,
                        keepalive_count_max=3,
                    ),
                    opts.connect_timeout,
                )
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                self._failures += 1
                delay = min(self.backoff_max, self.backoff_initial * 2 ** (self._failures - 1))
                self._retry_at = self.clock() + delay
                what = "host key not verified" if isinstance(exc, asyncssh.HostKeyNotVerifiable) else "cannot connect"
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.warning("ssh %s: %s (%s); next attempt in %.1f s", self.target, what, exc, delay)
                raise CommandError(
                    args, None, "", self._last_error, message=f"ssh {self.target}: {what}", site=self.site
                ) from exc
            self._failures = 0
            self._conn = conn
            self.connects += 1
            return conn

    async def close(self) -> None:
        """Close the connection (a later command opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()

    # -- commands -----------------------------------------------------------------------------
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
        command = remote_command(args, env)
        started = time.monotonic()
        for attempt in (1, 2):
            conn = await self._connection(args)
            try:
                return await self._exchange(conn, args, command, stdin, timeout, started)
            except _STALE as exc:
                self._drop(conn)
                opened = not isinstance(exc, asyncssh.ChannelOpenError)
                if attempt == 1 and not opened and time.monotonic() - started < timeout:
                    continue  # the command never started: safe to try once on a new connection
                raise CommandError(
                    args, None, "", f"{type(exc).__name__}: {exc}", message=f"ssh {self.target}: connection lost"
                ) from exc
        raise AssertionError("unreachable")

    async def _exchange(
        self,
        conn: asyncssh.SSHClientConnection,
        args: tuple[str, ...],
        command: str,
        stdin: str | None,
        timeout: float,
        started: float,
    ) -> CommandResult:
        left = max(0.001, timeout - (time.monotonic() - started))
        try:
            if stdin is None:  # end of file at once, as LocalExecutor's DEVNULL
                done = await conn.run(command, stdin=asyncssh.DEVNULL, check=False, timeout=left)
            else:
                done = await conn.run(command, input=stdin, check=False, timeout=left)
        except asyncssh.TimeoutError as exc:
            out, err = _text(exc.stdout), _text(exc.stderr)
            await self._kill(conn, err)
            raise CommandTimeout(args, timeout, out, _PID_LINE.sub("", err, count=1)) from None
        code = done.returncode if done.returncode is not None else -1
        if done.exit_signal:
            code = 128 + _signal_number(done.exit_signal[0])
        return CommandResult(
            argv=args,
            returncode=code,
            stdout=_text(done.stdout),
            stderr=_PID_LINE.sub("", _text(done.stderr), count=1),
            duration=time.monotonic() - started,
        )

    async def _kill(self, conn: asyncssh.SSHClientConnection, stderr: str) -> None:
        m = _PID_LINE.search(stderr)
        if m is None:
            return
        with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
            await conn.run(f"kill -KILL -- -{m.group(1)} 2>/dev/null", check=False, timeout=10)


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data if isinstance(data, str) else ""


def _signal_number(name: str) -> int:
    import signal

    with contextlib.suppress(KeyError):
        return int(signal.Signals[f"SIG{name}"])
    return 0
