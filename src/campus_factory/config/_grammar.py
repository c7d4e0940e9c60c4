"""The config boundary: the grammars names match in full, the bounds every number stays within,
the attributes and knobs only the factory writes, and the message each check gives.

Every check here matches with ``re.fullmatch`` (a ``$`` also matches before a trailing newline:
``"CF_CONFIG_EOF\\n"`` would pass it and close the glidein's heredoc). The config models call
these once, at load; past them every name is one line of the characters its grammar allows and
every number is finite and bounded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "FACTORY_OWNED_ATTRIBUTES",
    "FACTORY_OWNED_KNOBS",
    "GLIDEIN_TUNABLE",
    "IDENTITY",
    "MAX_DURATION",
    "MAX_NUMBER",
    "MAX_QUEUE_ALLOWANCE",
    "MAX_TOKEN_LIFETIME",
    "MAX_WALLTIME",
    "SCRATCH",
    "check_attribute_names",
    "check_bounded",
    "check_collector",
    "check_config_values",
    "check_env_names",
    "check_knob_names",
    "check_ledger_url",
    "check_names",
    "check_one_line",
    "fullmatch",
]

#: no number in the config is larger than this (2**53 > 10**15: every such integer is an exact float)
MAX_NUMBER = 10**15
#: the longest duration of any setting: one year
MAX_DURATION = 365 * 86400.0
#: the longest pilot walltime: 30 days (no batch system we know allows more by default)
MAX_WALLTIME = 30 * 86400.0
#: the longest pilot.token.queue_allowance: 14 days
MAX_QUEUE_ALLOWANCE = 14 * 86400.0
#: the longest lifetime of a minted pilot token (walltime + queue allowance): 44 days
MAX_TOKEN_LIFETIME = MAX_WALLTIME + MAX_QUEUE_ALLOWANCE

#: factory and site names: a letter, then letters, digits, _ . - (at most 40)
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
#: ClassAd attribute names the config may declare: no scope prefix (``MY.``/``TARGET.``), no dots
ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
#: HTCondor configuration knob names (pilot.extra_config)
KNOB = ATTRIBUTE
#: submit command names of remote HTCondor sites (``+Attr`` and ``MY.Attr`` set job attributes)
SUBMIT_KEY = re.compile(r"(?:\+|[Mm][Yy]\.)?[A-Za-z_][A-Za-z0-9_]{0,99}")
#: environment variable names
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: user and accounting-group names (allowed_owners, allowed_groups), schedd names, signing keys
WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}")
#: an HTCondor identity (pilot.token.identity with {site} replaced)
IDENTITY = re.compile(r"[A-Za-z0-9_.*-]{1,100}@[A-Za-z0-9_.-]{1,100}")
#: a pool address: host or [IPv6], an optional port, an optional shared-port query (?sock=collector)
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?|\[[0-9A-Fa-f:.]{2,45}\])"
COLLECTOR = re.compile(rf"(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?(?:\?[A-Za-z0-9_.=&-]{{1,100}})?")
#: the glidein's scratch directory on the worker: a path, shell parameter expansion allowed
SCRATCH = re.compile(r"[A-Za-z0-9_/.${}:-]{1,512}")
#: ledger URL schemes the ledger supports
LEDGER_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2")

#: slot-ad attributes only the factory sets (the planner's slot ad and the glidein's startd);
#: compared case-insensitively, as ClassAd and HTCondor do
FACTORY_OWNED_ATTRIBUTES = frozenset(
    n.lower()
    for n in (
        "Name",
        "Machine",
        "MyType",
        "TargetType",
        "START",
        "Requirements",
        "Offline",
        "CF_SITE_START",
        "CampusFactorySite",
        "CampusFactoryName",
        "CampusFactoryLifetime",
        "CampusFactoryPreemptable",
        "CampusFactoryPilotId",
        "CampusFactoryPilotEnd",
        "CampusFactoryRetireMargin",
        "CampusFactoryJobId",
    )
)
#: knobs the glidein writes itself (besides the attributes above): pilot.extra_config may not
#: replace them (tests/pilot/test_glidein_injection.py checks that this and GLIDEIN_TUNABLE cover
#: every knob it writes)
FACTORY_OWNED_KNOBS = FACTORY_OWNED_ATTRIBUTES | frozenset(
    n.lower()
    for n in (
        "COLLECTOR_HOST",
        "DAEMON_LIST",
        "SEC_DEFAULT_AUTHENTICATION",
        "SEC_CLIENT_AUTHENTICATION_METHODS",
        "SEC_DEFAULT_AUTHENTICATION_METHODS",
        "SEC_TOKEN_DIRECTORY",
        "SEC_USE_FAMILY_SESSION",
        "ALLOW_WRITE",
        "ALLOW_ADMINISTRATOR",
        "LOG",
        "SPOOL",
        "EXECUTE",
        "LOCK",
        "RUN",
        "NUM_SLOTS_TYPE_1",
        "SLOT_TYPE_1",
        "SLOT_TYPE_1_PARTITIONABLE",
        "UPDATE_INTERVAL",
        "STARTER_UPDATE_INTERVAL",
        "CCB_ADDRESS",
        "STARTD_ATTRS",
        "STARTD_JOB_ATTRS",
        "LOCAL_DIR",
        "RELEASE_DIR",
        "SBIN",
        "BIN",
        "LIB",
        "LIBEXEC",
        "MASTER_NAME",
        "STARTD_NAME",
        "NUM_CPUS",
        "MEMORY",
        "IsCloudNode",
        "HasCVMFS",
        "HasSingularity",
    )
)


#: the one knob the glidein writes that pilot.extra_config may replace: how long its startd waits
#: unclaimed before it leaves (default: the site's idle_timeout). A shorter wait only makes the
#: pilot leave sooner (e.g. before the factory would cancel it); it changes nothing of what runs
#: on it or where it reports.
GLIDEIN_TUNABLE = frozenset({"startd_noclaim_shutdown"})


def fullmatch(pattern: re.Pattern[str], text: object) -> bool:
    """True when ``text`` is a string matching ``pattern`` from its first to its last character."""
    return isinstance(text, str) and pattern.fullmatch(text) is not None


def check_names(names: Iterable[str], pattern: re.Pattern[str], what: str) -> None:
    for name in names:
        if not fullmatch(pattern, name):
            raise ValueError(f"{name!r} is not {what}")


def check_env_names(env: Iterable[str]) -> None:
    """Environment variable names a process accepts (os.environ refuses '=' and NUL)."""
    check_names(env, ENV_NAME, "an environment variable name (letters, digits, _; not starting with a digit)")


def check_attribute_names(names: Iterable[str], where: str) -> None:
    """Names declared in a slot ad: the ClassAd grammar, and none that only the factory sets."""
    for name in names:
        if not fullmatch(ATTRIBUTE, name):
            raise ValueError(
                f"{name!r} is not a ClassAd attribute name (letters, digits, _; no scope prefix such as MY.)"
            )
        if name.lower() in FACTORY_OWNED_ATTRIBUTES:
            raise ValueError(f"{where}: {name!r} is set by the factory itself and cannot be declared here")


def check_knob_names(names: Iterable[str], where: str) -> None:
    """HTCondor knobs of the glidein: the knob grammar, and none the glidein writes itself."""
    for name in names:
        if not fullmatch(KNOB, name):
            raise ValueError(f"{name!r} is not an HTCondor configuration knob name (letters, digits, _)")
        if name.lower() in FACTORY_OWNED_KNOBS:
            raise ValueError(f"{where}: {name!r} is written by the glidein itself and cannot be set here")


def check_config_values(values: Iterable[str], where: str) -> None:
    """Values written as one line of an HTCondor config file: no control characters, no line
    continuation, no heredoc delimiter of the glidein script."""
    for value in values:
        if any(ord(c) < 32 and c != "\t" for c in value) or "\x7f" in value:
            raise ValueError(f"{where}: a value cannot contain line breaks or control characters: {value[:60]!r}")
        if value.rstrip().endswith("\\"):
            raise ValueError(f"{where}: a value cannot end with a backslash (line continuation): {value[:60]!r}")
        if "CF_CONFIG_EOF" in value or "CF_TOKEN_EOF" in value:
            raise ValueError(f"{where}: a value cannot contain the glidein's heredoc delimiters")


def check_one_line(values: Iterable[str | None], where: str) -> None:
    """Values a scheduler reads as one directive line: no line break or other control character."""
    for value in values:
        if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(f"{where}: {value[:60]!r} cannot contain line breaks or control characters")


def check_collector(address: str) -> str:
    """``host[:port][?sock=...]``, the port in 1..65535."""
    m = COLLECTOR.fullmatch(address) if isinstance(address, str) else None
    if m is None:
        raise ValueError(f"{address!r} is not a collector address (host or host:port, e.g. cm.example.edu:9618)")
    if m.group("port") is not None and not 1 <= int(m.group("port")) <= 65535:
        raise ValueError(f"{address!r}: the port must be between 1 and 65535")
    return address


def check_ledger_url(url: str) -> str:
    """A URL of a database the ledger supports (its scheme; the path is checked by `config check`)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in LEDGER_SCHEMES:
        raise ValueError(
            f"{url.split('://')[0]!r} is not a supported ledger URL scheme: use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB"
        )
    if scheme.lower() == "sqlite" and rest and not (rest.startswith("/") and len(rest) > 1):
        raise ValueError("a sqlite ledger URL is sqlite:///PATH (three slashes, then the file; sqlite:// is in memory)")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("the ledger URL cannot contain control characters")
    return url


def check_bounded(value: Any, where: str = "") -> Any:
    """Every number in ``value`` (nested dicts and lists too) finite and at most MAX_NUMBER in size."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{path + ': ' if path else ''}{node} is not a finite number")
        if isinstance(node, int | float) and abs(node) > MAX_NUMBER:
            shown = str(node) if len(str(node)) <= 24 else str(node)[:12] + "..."
            raise ValueError(f"{path + ': ' if path else ''}{shown} is out of bounds (at most 1e15)")
        if isinstance(node, Mapping):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in node.items())
        elif isinstance(node, list | tuple):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(node))
    return value
