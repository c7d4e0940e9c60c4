"""The configuration tree: one TOML file, validated once, passed down.

Every section is a frozen pydantic model with ``extra="forbid"``, so a misspelt key is an error
that names its path. Nothing reads configuration from globals: :func:`load_config` returns a
:class:`Config` and callers hand the pieces they need to the parts they build.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from ..errors import ConfigError
from ._base import Duration, _nul_path, _Section, parse_duration
from ._grammar import fullmatch
from .cloud import InstanceTypeOption
from .factory import ApiOptions, FactoryOptions, FlockSource, LoggingOptions, PilotOptions, PoolOptions, TokenOptions
from .site import (
    CLOUD_PROVIDERS,
    SIZED_CLOUD_PROVIDERS,
    BatchOptions,
    BudgetOptions,
    CloudOptions,
    IsolationOptions,
    RemoteHTCondorOptions,
    SiteConfig,
    SiteLimits,
    SlotResources,
    TransportOptions,
)

__all__ = [
    "CLOUD_PROVIDERS",
    "SIZED_CLOUD_PROVIDERS",
    "ApiOptions",
    "BatchOptions",
    "BudgetOptions",
    "CloudOptions",
    "Config",
    "Duration",
    "FactoryOptions",
    "FlockSource",
    "InstanceTypeOption",
    "IsolationOptions",
    "LoggingOptions",
    "PilotOptions",
    "PoolOptions",
    "RemoteHTCondorOptions",
    "SiteConfig",
    "SiteLimits",
    "SlotResources",
    "TokenOptions",
    "TransportOptions",
    "load_config",
    "parse_config",
    "parse_duration",
]


class Config(_Section):
    """The whole configuration."""

    pool: PoolOptions = Field(default_factory=PoolOptions)
    factory: FactoryOptions = Field(default_factory=FactoryOptions)
    pilot: PilotOptions = Field(default_factory=PilotOptions)
    sites: tuple[SiteConfig, ...] = Field(default=(), description="The sites, in order of preference.")
    api: ApiOptions = Field(default_factory=lambda: ApiOptions())
    logging: LoggingOptions = Field(default_factory=lambda: LoggingOptions())
    budget: BudgetOptions = Field(default_factory=BudgetOptions)

    @model_validator(mode="after")
    def _unique_sites(self) -> Config:
        seen: dict[str, str] = {}
        for site in self.sites:
            low = site.name.lower()
            if low in seen:
                same = "is used twice" if seen[low] == site.name else f"differs from {seen[low]!r} only in case"
                raise ValueError(f"site name {site.name!r} {same}")
            seen[low] = site.name
        return self

    @model_validator(mode="after")
    def _payloads(self) -> Config:
        for site in self.sites:
            if site.provider == "kubernetes" and self.payload_of(site) == "glidein":
                raise ValueError(
                    f'site {site.name!r}: the "glidein" payload is not supported in Kubernetes pods yet; '
                    'set payload = "command" on this site (the image then runs pilot.command)'
                )
        return self

    def payload_of(self, site: SiteConfig) -> str:
        """What a site's pilots run: the site's own ``payload``, else ``pilot.payload``."""
        return site.payload or self.pilot.payload

    def joins_pool(self, site: SiteConfig) -> bool:
        """Whether the site's pilots join the pool (they run a glidein)."""
        return self.payload_of(site) == "glidein"

    def site(self, name: str) -> SiteConfig:
        for site in self.sites:
            if site.name == name:
                return site
        raise ConfigError(f"no site named {name!r} in the config")


def _path(loc: tuple[int | str, ...], data: Any) -> str:
    """A TOML-ish key path: ``sites[alpha].limits.max_pilots``."""
    out: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            name = None
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                name = node[part].get("name")
            printable = isinstance(name, str) and name.isprintable() and 0 < len(name) <= 60
            shown = name if printable else part  # never a raw name holding a line break or an escape
            out[-1] = f"{out[-1]}[{shown}]" if out else f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            out.append(part if fullmatch(KEY, part) else repr(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(out) or "(top level)"


KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: the largest config file read (a config is a few kB)
MAX_FILE_BYTES = 16 << 20


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (misspelt? see examples/campus.toml for every key)"
    if error["type"] == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate an already-parsed TOML document."""
    nul = _nul_path(data)
    if nul is not None:
        raise ConfigError(f"{source}: 1 problem(s) in the config", [(nul, "contains a NUL character")])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [(_path(tuple(e["loc"]), data), _reason(e)) for e in exc.errors()]
        raise ConfigError(f"{source}: {len(problems)} problem(s) in the config", problems) from exc


def _read(p: Path) -> str:
    """The text of a regular file: a FIFO, device or directory is refused without opening it
    for a blocking read."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such config file (pass --config or set CAMPUS_FACTORY_CONFIG)") from exc
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{p}: not a regular file (a config is a TOML file, not a FIFO, device or directory)")
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{p}: {info.st_size} bytes is too large for a config file (at most 16 MiB)")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_FILE_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config file: {exc}") from exc
    finally:
        os.close(fd)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file (a regular file, not empty)."""
    p = Path(path)
    text = _read(p)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses once per level of nested arrays or inline tables
        raise ConfigError(f"{p}: not valid TOML: arrays or inline tables are nested too deeply") from None
    if not data:
        raise ConfigError(f"{p}: the config file is empty (see examples/campus.toml for every key)")
    return parse_config(data, str(p))
