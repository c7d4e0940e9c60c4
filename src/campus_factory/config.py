"""The configuration tree: one TOML file, validated once, passed down.

Every section is a frozen pydantic model with ``extra="forbid"``, so a misspelt key is an error
that names its path. Nothing reads configuration from globals: :func:`load_config` returns a
:class:`Config` and callers hand the pieces they need to the parts they build.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

__all__ = [
    "BatchOptions",
    "Config",
    "FactoryOptions",
    "IsolationOptions",
    "PilotOptions",
    "PoolOptions",
    "SiteConfig",
    "SiteLimits",
    "SlotResources",
    "TokenOptions",
    "TransportOptions",
    "load_config",
    "parse_config",
    "parse_duration",
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$"


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"4h"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts).lower() != text.lower():
            raise ValueError(f"{value!r} is not a duration (use seconds, or e.g. '90s', '15m', '4h')")
        return float(sum(float(n) * _UNIT[u.lower()] for n, u in parts))
    raise ValueError(f"expected a duration, got {type(value).__name__}")


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolOptions(_Section):
    """The HTCondor pool pilots join and whose idle jobs are the demand."""

    collector: str = Field("127.0.0.1:9618", description="Address of the pool's collector.")
    schedds: tuple[str, ...] = Field(
        (),
        description="Schedd names to read idle jobs from; empty means every schedd the collector knows.",
    )
    job_constraint: str = Field("true", description="Extra ClassAd constraint on idle jobs considered as demand.")
    query_timeout: Duration = Field(30.0, gt=0, description="Timeout of one collector or schedd query.")
    offline_ads: bool = Field(
        False,
        description="Publish each site's slot ad into the collector as an offline startd ad and use the "
        "negotiator's matches of it (MachineLastMatchTime) as a demand signal; the pool config must rank "
        "offline ads last (NEGOTIATOR_PRE_JOB_RANK).",
    )
    offline_ad_lifetime: Duration = Field(
        3600.0, ge=60, description="ClassAdLifetime of published offline ads; they are re-advertised every cycle."
    )
    offline_match_window: Duration = Field(
        300.0, gt=0, description="A negotiator match of an offline ad counts as demand for this long."
    )


class FactoryOptions(_Section):
    """The loop itself."""

    name: str = Field(
        "campus",
        pattern=_NAME,
        description="Tags every pilot this factory starts; factories sharing sites need different names.",
    )
    cycle_interval: Duration = Field(60.0, ge=1, description="Seconds between two cycles.")
    ledger_url: str = Field(
        "sqlite:///campus-factory.sqlite",
        description="SQLAlchemy URL of the ledger (sqlite:///PATH or postgresql+psycopg://...).",
    )
    submission_grace: Duration = Field(
        300.0,
        ge=0,
        description="A pilot recorded as requested but never seen at its site after this long is failed.",
    )


class TokenOptions(_Section):
    """How the factory mints each submission's IDTOKEN (run where the pool's signing key is)."""

    identity: str = Field(
        "pilot-{site}@campus-factory",
        description="Identity in the token; {site} is replaced. The pool's ALLOW_ADVERTISE_STARTD must match it.",
    )
    queue_allowance: Duration = Field(
        86400.0, ge=0, description="Token lifetime beyond the pilot walltime, to cover time waiting in the queue."
    )
    command: tuple[str, ...] = Field(
        ("condor_token_create",), min_length=1, description="The minting command (argument list)."
    )
    key: str | None = Field(None, description="Signing key name (condor_token_create -key); default: the pool's.")
    environment: dict[str, str] = Field(
        default_factory=dict, description="Environment of the minting command, e.g. CONDOR_CONFIG of the pool."
    )
    timeout: Duration = Field(30.0, gt=0, description="Timeout of the minting command.")


class PilotOptions(_Section):
    """What a pilot runs once its batch job or VM starts."""

    payload: Literal["command", "glidein"] = Field(
        "command",
        description="'command' runs `command` until told to leave (tests, smoke runs); "
        "'glidein' starts an HTCondor startd that joins the pool.",
    )
    command: tuple[str, ...] = Field(
        ("sleep", "infinity"), min_length=1, description="Argument list of the 'command' payload."
    )
    condor_locations: tuple[str, ...] = Field(
        ("/usr", "/opt/condor"),
        description="Where a glidein looks for HTCondor on the worker (a prefix holding sbin/condor_master), "
        "in order; a CVMFS path works too.",
    )
    tarball: str | None = Field(
        None, description="HTCondor tarball (shared path or http(s) URL) unpacked to scratch when no location has it."
    )
    cvmfs_repositories: tuple[str, ...] = Field(
        (), description="CVMFS repositories a glidein checks; HasCVMFS is True when all are readable."
    )
    ccb: bool = Field(False, description="Workers have no inbound connectivity: use the collector as CCB.")
    update_interval: Duration = Field(60.0, ge=1, description="How often the glidein's startd updates the collector.")
    retire_margin: Duration = Field(
        600.0, ge=0, description="A glidein stops accepting jobs this long before its walltime ends."
    )
    scratch: str = Field(
        "${TMPDIR:-/tmp}", description="Directory on the worker for the glidein's private files (shell syntax allowed)."
    )
    extra_config: dict[str, str] = Field(
        default_factory=dict, description="More HTCondor configuration for glideins, knob = value."
    )
    token: TokenOptions = Field(default_factory=lambda: TokenOptions())


class SlotResources(_Section):
    """What one pilot at a site offers (its partitionable slot)."""

    cpus: int = Field(1, ge=1, description="Cores per pilot.")
    memory_mb: int = Field(2048, ge=1, description="Memory per pilot, in MB.")
    disk_mb: int = Field(10240, ge=0, description="Scratch disk per pilot, in MB.")
    gpus: int = Field(0, ge=0, description="GPUs per pilot.")
    attributes: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Custom ClassAd attributes of the pilots' slot ad, as literals (a TOML string is a "
        "ClassAd string), e.g. HasCVMFS = true, OpSysAndVer = 'AlmaLinux9'.",
    )
    expressions: dict[str, str] = Field(
        default_factory=dict,
        description="Custom slot ad attributes given as ClassAd expressions, e.g. IsGood = 'Memory > 4000'.",
    )
    start: str = Field(
        "true",
        description="The pilots' START expression (job as TARGET); allowed owners/groups are ANDed to it.",
    )
    learn: bool = Field(
        True,
        description="Refine the slot ad from the latest real pilot ad of the site (memory, HasCVMFS, ...).",
    )
    learn_attributes: tuple[str, ...] = Field(
        (),
        description="More attributes to take from real pilot ads, beyond the built-in stable facts, Has* "
        "attributes and the declared attributes.",
    )
    pinned: tuple[str, ...] = Field(
        (), description="Declared attributes that learned pilot ads never override (e.g. 'Memory')."
    )

    @model_validator(mode="after")
    def _classad(self) -> SlotResources:
        from .classads import ClassAdError, check_expression, is_identifier

        for name in (*self.attributes, *self.expressions):
            if not is_identifier(name):
                raise ValueError(f"{name!r} is not a ClassAd attribute name")
        try:
            for text in (self.start, *self.expressions.values()):
                check_expression(text)
        except ClassAdError as exc:
            raise ValueError(str(exc)) from None
        return self


class SiteLimits(_Section):
    """Limits the planner never exceeds at a site."""

    max_pilots: int = Field(10, ge=0, description="Pilots alive at once (requested, queued or running).")
    max_queued: int = Field(5, ge=0, description="Pilots waiting in the site's queue at once.")
    max_submit_per_cycle: int = Field(5, ge=0, description="Pilots submitted in one cycle.")
    floor: int = Field(0, ge=0, description="Keep at least this many pilots here, even with no demand.")
    ceiling: int | None = Field(
        None,
        ge=0,
        description="Keep at most this many pilots here; pilots above it are cancelled. Unset: max_pilots.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> SiteLimits:
        if self.max_queued > self.max_pilots:
            raise ValueError("max_queued cannot exceed max_pilots")
        if self.floor > min(self.max_pilots, self.ceiling if self.ceiling is not None else self.max_pilots):
            raise ValueError("floor cannot exceed max_pilots nor ceiling")
        return self


class BatchOptions(_Section):
    """Options of batch-scheduler sites (Slurm today)."""

    partition: str | None = Field(None, description="Partition or queue pilots are submitted to.")
    account: str | None = Field(None, description="Account charged for the pilots.")
    qos: str | None = Field(None, description="Quality of service, e.g. a preemptable one.")
    extra_directives: tuple[str, ...] = Field(
        (), description="More scheduler options, one per entry, e.g. '--constraint=haswell'."
    )
    work_dir: str = Field(
        "/tmp/campus-factory",
        description="Absolute directory on the site for pilot logs; created when missing.",
    )
    command_timeout: Duration = Field(30.0, gt=0, description="Timeout of each scheduler command.")
    accounting: Literal["auto", "sacct", "jobcomp", "none"] = Field(
        "auto",
        description="Where finished jobs are looked up: 'auto' tries sacct, then sacct -c (jobcomp).",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment for the scheduler's commands, e.g. SLURM_CONF for a second cluster.",
    )
    term_margin: Duration = Field(
        300.0,
        ge=0,
        description="The pilot is asked to leave this long before its walltime ends.",
    )

    @model_validator(mode="after")
    def _absolute(self) -> BatchOptions:
        if not self.work_dir.startswith("/"):
            raise ValueError("work_dir must be an absolute path")
        return self


class IsolationOptions(_Section):
    """When a site's pilots fail, back off from it (other sites are unaffected)."""

    backoff_after: int = Field(2, ge=1, description="Consecutive failed pilots before the site backs off.")
    backoff_base: Duration = Field(60.0, gt=0, description="First backoff; it doubles with each further failure.")
    backoff_max: Duration = Field(3600.0, gt=0, description="Longest backoff.")
    early_death: Duration = Field(
        300.0, ge=0, description="A pilot that fails within this long of starting counts as a failure."
    )
    join_timeout: Duration = Field(
        600.0,
        gt=0,
        description="A running pilot whose startd has not joined the pool after this long is a black-hole "
        "symptom (checked only when the pool is observed).",
    )
    black_hole_after: int = Field(
        3, ge=1, description="This many started pilots in a row that never joined flag the site as a black hole."
    )
    window: Duration = Field(6 * 3600.0, gt=0, description="Only pilots created this recently are considered.")


class TransportOptions(_Section):
    """How the site's commands are run."""

    kind: Literal["local"] = Field("local", description="'local': on this host.")


class SiteConfig(_Section):
    """One place pilots can be started."""

    name: str = Field(..., pattern=_NAME, description="Unique site name (letters, digits, _ . -).")
    provider: Literal["slurm", "fake", "local"] = Field(
        ..., description="Kind of site: slurm, local (processes on this host), fake (in memory, tests)."
    )
    enabled: bool = Field(True, description="A disabled site gets no new pilots.")
    slot: SlotResources = Field(default_factory=SlotResources)
    limits: SiteLimits = Field(default_factory=SiteLimits)
    walltime: Duration = Field(4 * 3600.0, gt=0, description="Walltime requested for each pilot.")
    idle_timeout: Duration = Field(600.0, ge=0, description="A pilot idle for this long leaves (or is cancelled).")
    batch: BatchOptions = Field(default_factory=BatchOptions)
    transport: TransportOptions = Field(default_factory=TransportOptions)
    rank: float = Field(
        0.0, description="Preference: a job group matching several sites goes to the highest rank first."
    )
    cost_per_core_hour: float = Field(
        0.0, ge=0, description="Cost of one core-hour here; among equal ranks, cheaper sites are preferred."
    )
    allowed_owners: tuple[str, ...] = Field(
        (), description="Only these users' jobs may run on the pilots (added to START); empty: anyone."
    )
    allowed_groups: tuple[str, ...] = Field(
        (), description="Accounting groups (AcctGroup) whose jobs may run here, besides allowed_owners."
    )
    preemptable: bool = Field(
        False, description="The site may preempt pilots; advertised as CampusFactoryPreemptable in the slot ad."
    )
    job_runtime: Duration = Field(
        1800.0,
        ge=0,
        description="Runtime assumed for jobs that declare none (MaxWallTimeMins, AllowedExecuteDuration): "
        "a running pilot with less lifetime left is not capacity for them.",
    )
    isolation: IsolationOptions = Field(default_factory=IsolationOptions)


class Config(_Section):
    """The whole configuration."""

    pool: PoolOptions = Field(default_factory=PoolOptions)
    factory: FactoryOptions = Field(default_factory=FactoryOptions)
    pilot: PilotOptions = Field(default_factory=PilotOptions)
    sites: tuple[SiteConfig, ...] = Field(default=(), description="The sites, in order of preference.")

    @model_validator(mode="after")
    def _unique_sites(self) -> Config:
        seen: set[str] = set()
        for site in self.sites:
            if site.name in seen:
                raise ValueError(f"site name {site.name!r} is used twice")
            seen.add(site.name)
        return self

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
            out[-1] = f"{out[-1]}[{name if isinstance(name, str) else part}]" if out else f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            out.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(out) or "(top level)"


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (misspelt? see examples/campus.toml for every key)"
    if error["type"] == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate an already-parsed TOML document."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [(_path(tuple(e["loc"]), data), _reason(e)) for e in exc.errors()]
        raise ConfigError(f"{source}: {len(problems)} problem(s) in the config", problems) from exc


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such config file (pass --config or set CAMPUS_FACTORY_CONFIG)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config file: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    return parse_config(data, str(p))
