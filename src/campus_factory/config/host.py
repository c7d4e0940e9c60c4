"""What `config check` verifies on this host beyond the file itself: the ledger can be written,
and secret files are readable by their owner only. Loading a config does none of this (a config
is valid on the host it is meant for, not only here); the CLI and the API call it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import Config

__all__ = ["Finding", "host_findings", "secret_file_warning"]

#: (severity "error" | "warning", key path, message)
Finding = tuple[str, str, str]


def _sqlite_path(url: str) -> Path | None:
    rest = url.partition("://")[2]
    if not url.lower().startswith("sqlite") or rest in ("", "/", "/:memory:"):
        return None
    return Path(rest[1:]) if rest.startswith("/") else None


def _ledger(url: str) -> Finding | None:
    path = _sqlite_path(url)
    if path is None:
        return None
    where = "factory.ledger_url"
    if path.exists():
        if not path.is_file():
            return ("error", where, f"{path} exists and is not a file")
        if not os.access(path, os.R_OK | os.W_OK):
            return ("error", where, f"{path} is not writable by this user")
    parent = path.parent if str(path.parent) else Path(".")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # the ledger creates missing directories
    if not existing.is_dir():
        return ("error", where, f"{existing} is not a directory: the ledger file {path} cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        return (
            "error",
            where,
            f"the directory {existing} is not writable by this user: the ledger {path} cannot be written",
        )
    return None


def secret_file_warning(path: str | Path, key: str) -> Finding | None:
    """A warning when a file holding a secret may be read by other users (mode not 0600/0400)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_IMODE(mode) & 0o077:
        return (
            "warning",
            key,
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):04o}): run chmod 600 {path}",
        )
    return None


def host_findings(config: Config) -> list[Finding]:
    """Problems of the config on this host (errors) and hazards (warnings)."""
    out: list[Finding] = []
    ledger = _ledger(config.factory.ledger_url)
    if ledger is not None:
        out.append(ledger)
    if config.api.token_file:
        if not Path(config.api.token_file).is_file():
            out.append(
                ("warning", "api.token_file", f"{config.api.token_file} does not exist (the API will not start)")
            )
        else:
            warning = secret_file_warning(config.api.token_file, "api.token_file")
            if warning is not None:
                out.append(warning)
    return out
