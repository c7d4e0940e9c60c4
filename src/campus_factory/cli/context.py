"""What every command takes from the root context: the config, loaded once, and the ledger.

The root command (:mod:`.main`) stores the ``--config`` path and ``-v``; subcommand modules
import these helpers from here, never from :mod:`.main`, so no command module imports the
module that registers it.
"""

from __future__ import annotations

import click

from ..config import Config, load_config
from ..ledger import Ledger

__all__ = ["config_of", "ledger_of", "reader_of"]


def config_of(ctx: click.Context) -> Config:
    """The validated config of this invocation, loaded on first use."""
    obj = ctx.find_root().obj
    if obj.get("config") is None:
        obj["config"] = load_config(obj["config_path"])
    cfg: Config = obj["config"]
    return cfg


def ledger_of(ctx: click.Context, url: str | None = None) -> Ledger:
    """The ledger at ``url``, else at the config's ``factory.ledger_url``."""
    return Ledger.open(url or config_of(ctx).factory.ledger_url)


def reader_of(ctx: click.Context, url: str | None = None) -> Ledger:
    """The ledger for a command that only reads it: nothing is created, nothing migrated (a
    SQLite file that does not exist yet reads as an empty ledger)."""
    from ..loop.assemble import open_for_reading

    return open_for_reading(url or config_of(ctx).factory.ledger_url)
