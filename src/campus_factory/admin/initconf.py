"""The commented config that ``campus-factory init`` writes: answers in, TOML text out (pure).

The text follows ``examples/campus.toml``: a comment above every key, what init found on the
host at the top, and schedulers found but not chosen as commented-out sites at the end.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_LEDGER",
    "FlockAnswers",
    "InitAnswers",
    "SiteAnswers",
    "is_loopback",
    "render_config",
    "same_host_knobs",
    "site_name",
]

DEFAULT_LEDGER = "sqlite:////var/lib/campus-factory/ledger.sqlite"
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class SiteAnswers:
    name: str
    provider: str
    cpus: int
    memory_mb: int
    partition: str | None = None
    work_dir: str = "/tmp/campus-factory"
    max_pilots: int = 10
    environment: Mapping[str, str] = field(default_factory=dict)
    bin_dir: str | None = None
    pbs_flavor: str | None = None
    note: str = ""


@dataclass(frozen=True)
class FlockAnswers:
    """A campus pool whose schedds flock to the pool the pilots join (``pool.flock_from``)."""

    name: str
    collector: str
    schedds: tuple[str, ...]
    found: tuple[str, ...] = ()  # every schedd its collector lists


@dataclass(frozen=True)
class InitAnswers:
    collector: str
    site: SiteAnswers
    factory_name: str = "campus"
    ledger_url: str = DEFAULT_LEDGER
    payload: str = "glidein"
    token_command: tuple[str, ...] = ("condor_token_create",)
    token_environment: Mapping[str, str] = field(default_factory=dict)
    condor_locations: tuple[str, ...] = ("/usr",)
    extra_config: Mapping[str, str] = field(default_factory=dict)
    found: tuple[str, ...] = ()
    schedds: tuple[str, ...] = ()
    other_sites: tuple[SiteAnswers, ...] = ()
    flock: FlockAnswers | None = None


def site_name(text: str, fallback: str) -> str:
    """A valid site name from a cluster name (letters, digits, ``_ . -``; starts with a letter)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", text.strip())[:40]
    return name if re.match(r"^[A-Za-z]", name) else fallback


def is_loopback(collector: str) -> bool:
    host = collector.rsplit(":", 1)[0].strip("[]") if ":" in collector else collector
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_host_knobs(as_root: bool) -> dict[str, str]:
    """Knobs for a glidein started on the pool's own host (the lab notes' single-host setup)."""
    knobs = {
        "NETWORK_INTERFACE": "127.0.0.1",
        "USE_SHARED_PORT": "False",
        "BASE_CGROUP": "",
        "USE_PID_NAMESPACES": "False",
    }
    if as_root:
        knobs |= {"CONDOR_IDS": "0.0", "ALLOW_DAEMON": "root@localhost"}
    return knobs


def _s(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def _key(name: str) -> str:
    return name if _BARE.match(name) else _s(name)


def _array(values: Sequence[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def _table(values: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f"{_key(k)} = {_s(v)}" for k, v in values.items()) + " }" if values else "{}"


def _site_lines(site: SiteAnswers) -> list[str]:
    queued = min(5, site.max_pilots)
    lines = [
        "[[sites]]",
        "# Unique name: letters, digits, '_', '.', '-'.",
        f"name = {_s(site.name)}",
        '# Kind of site: "slurm", "pbs", "sge", "lsf", "htcondor", "local", "ec2", "openstack", ...',
        f"provider = {_s(site.provider)}",
        "# Walltime requested for each pilot, and how long an idle pilot waits before it leaves.",
        'walltime = "4h"',
        'idle_timeout = "10m"',
        "# What one pilot offers: cores and memory (MB)." + (f" {site.note}" if site.note else ""),
        f"slot = {{ cpus = {site.cpus}, memory_mb = {site.memory_mb} }}",
        "# Pilots alive at once, waiting in the queue at once, and submitted per cycle.",
        f"limits = {{ max_pilots = {site.max_pilots}, max_queued = {queued}, max_submit_per_cycle = {queued} }}",
        "",
        "[sites.batch]",
    ]
    if site.provider == "local":
        return [*lines, "# Directory of the pilots' logs and state files.", f"work_dir = {_s(site.work_dir)}"]
    if site.partition:
        lines += ["# Partition (queue) pilots are submitted to.", f"partition = {_s(site.partition)}"]
    else:
        lines += ["# Partition (queue) pilots are submitted to; unset: the scheduler's default.", '# partition = "..."']
    lines += [
        "# Absolute directory on the site for pilot logs; created when missing.",
        f"work_dir = {_s(site.work_dir)}",
        "# Timeout of each scheduler command.",
        'command_timeout = "30s"',
        '# account = "htc"          # account charged for the pilots',
        '# qos = "preemptable"      # a preemptable QOS lets local jobs push pilots out',
    ]
    if site.environment:
        lines += [
            "# Environment of the scheduler's commands (as found on this host).",
            f"environment = {_table(site.environment)}",
        ]
    if site.bin_dir:
        lines += ["# Directory of the scheduler's commands.", f"bin_dir = {_s(site.bin_dir)}"]
    if site.pbs_flavor:
        lines += [
            '# PBS dialect: "pbspro", "torque" or "slurm" (Slurm\'s PBS wrappers).',
            f"pbs_flavor = {_s(site.pbs_flavor)}",
        ]
    return lines


def _flock_lines(f: FlockAnswers) -> list[str]:
    others = [s for s in f.found if s not in f.schedds]
    more = f" (its collector also lists: {', '.join(others)})" if others else ""
    return [
        "",
        "# A campus pool whose schedds flock to this pool (the Campus Grid Factory topology). Its idle",
        "# jobs that no campus slot could run are demand; the jobs the campus pool can run are left to it.",
        "[[pool.flock_from]]",
        "# Label of the campus pool.",
        f"name = {_s(f.name)}",
        "# The campus pool's collector.",
        f"collector = {_s(f.collector)}",
        f"# The campus schedds that flock here{more}.",
        f"schedds = {_array(f.schedds)}",
        "# Their identity at this pool's collector (a token this pool mints; condor-config --flock-from allows it).",
        '# schedd_identity = "flock-{name}@campus-factory"',
        "# This pool's negotiator's identity at the campus schedds (condor-config --flock-to allows it).",
        '# negotiator_identity = "negotiator@{name}"',
        "# Campus-runnable jobs idle for longer than this count as demand too; unset: never.",
        '# wait_for_campus = "30m"',
    ]


def render_config(answers: InitAnswers, *, generated_at: str) -> str:
    """The config text; ``generated_at`` goes into the header."""
    a = answers
    out = [
        f"# campus-factory configuration, written by `campus-factory init` on {generated_at}.",
        "# Every key is explained in examples/campus.toml and docs/reference/config.md.",
        "# Check it:  campus-factory -c campus.toml config check",
        "# Then:      campus-factory -c campus.toml doctor",
        '# Durations take seconds (60) or strings such as "90s", "15m", "4h".',
    ]
    if a.found:
        out += ["#", "# What init found on this host:"] + [f"#   {line}" for line in a.found]
    found_schedds = f" (found: {', '.join(a.schedds)})" if a.schedds else ""
    out += [
        "",
        "[pool]",
        "# Address (host:port) of the pool's collector: pilots join this pool and demand is read from it.",
        f"collector = {_s(a.collector)}",
        f"# Schedds whose idle jobs count as demand; empty: every schedd the collector knows{found_schedds}.",
        "schedds = []",
        *(_flock_lines(a.flock) if a.flock else []),
        "",
        "[factory]",
        "# Tags every pilot this factory starts; two factories that share a site need different names.",
        f"name = {_s(a.factory_name)}",
        "# Time between two cycles of observe -> plan -> act -> record.",
        'cycle_interval = "60s"',
        "# The ledger: SQLite by default; PostgreSQL for production (postgresql+psycopg://user@host/db).",
        f"ledger_url = {_s(a.ledger_url)}",
        "",
        "[pilot]",
        '# What a pilot runs: "glidein" starts an HTCondor startd that joins the pool;',
        '# "command" runs pilot.command until asked to leave (a smoke test that joins nothing).',
        f"payload = {_s(a.payload)}",
        "# Where a glidein looks for HTCondor on the workers (a prefix holding sbin/condor_master), in order.",
        f"condor_locations = {_array(a.condor_locations)}",
        "# ccb = true                 # workers have no inbound connectivity: use the collector as CCB",
        "",
        "[pilot.token]",
        "# Mints each submission's IDTOKEN (ADVERTISE_STARTD, ADVERTISE_MASTER, READ). It must run where",
        "# the pool's signing key is (the central manager, or a host holding a copy of the key).",
        f"command = {_array(a.token_command)}",
        "# The identity in the token; the pool's ALLOW_ADVERTISE_STARTD must match it (condor-config writes it).",
        '# identity = "pilot-{site}@campus-factory"',
    ]
    if a.token_environment:
        out += ["# Environment of the minting command.", f"environment = {_table(a.token_environment)}"]
    if a.extra_config:
        out += [
            "",
            "[pilot.extra_config]",
            "# The collector is on loopback, so pilots can only join from this host: these knobs let a",
            "# glidein run beside the pool's own daemons. Remove them for a collector that workers reach.",
        ] + [f"{_key(k)} = {_s(v)}" for k, v in a.extra_config.items()]
    out += ["", "# Sites, in order of preference: a job group goes to the first site whose slot can hold it."]
    out += _site_lines(a.site)
    if a.other_sites:
        out += ["", "# Also found on this host; uncomment a block to use it too."]
        for other in a.other_sites:
            out += [""] + [f"# {line}" if line else "#" for line in _site_lines(other)]
    return "\n".join(out) + "\n"
