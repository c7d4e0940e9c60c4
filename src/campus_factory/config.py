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
    "ApiOptions",
    "BatchOptions",
    "BudgetOptions",
    "CloudOptions",
    "Config",
    "FactoryOptions",
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
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_env_names(env: dict[str, str]) -> None:
    """Environment variable names a process accepts (os.environ refuses '=' and NUL)."""
    for name in env:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")


def _nul_path(data: Any) -> str | None:
    """The key path of the first string (key or value) holding a NUL character, if any.

    NUL can be written in TOML (``\\u0000``) but no command line, environment or file name holds
    it: rejected here once, rather than failing a command at run time. Iterative (deep documents).
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            return path or "(top level)"
        if isinstance(node, dict):
            for key, value in node.items():
                sub = f"{path}.{key}" if path else str(key)
                if "\x00" in str(key):
                    return sub
                stack.append((sub, value))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(node))
    return None


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

    @model_validator(mode="after")
    def _env(self) -> TokenOptions:
        _check_env_names(self.environment)
        return self


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
        for key, text in (("start", self.start), *((f"expressions.{k}", v) for k, v in self.expressions.items())):
            try:
                check_expression(text)
            except ClassAdError as exc:
                raise ValueError(f"{key}: {exc}") from None
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
    bin_dir: str | None = Field(
        None,
        description="Absolute directory holding the scheduler's commands on the site, e.g. "
        "/opt/slurm-torque/usr/bin for Slurm's PBS wrappers; unset: found on PATH (PBS, SGE, LSF).",
    )
    pbs_flavor: Literal["pbspro", "torque", "slurm"] = Field(
        "pbspro",
        description="PBS dialect: 'pbspro' (PBS Pro/OpenPBS: select syntax, -J arrays, qstat -x history), "
        "'torque' (-t arrays, nodes=1:ppn=N, tracejob), 'slurm' (Slurm's PBS wrappers: one job per pilot).",
    )
    json_output: bool = Field(
        True,
        description="Read JSON listings where the scheduler has them (OpenPBS/PBS Pro qstat -F json, "
        "LSF bjobs -json); turn off for older versions.",
    )
    sge_parallel_environment: str = Field(
        "smp", description="SGE parallel environment that gives a pilot several slots on one host."
    )
    sge_memory_complex: str | None = Field(
        None,
        description="SGE complex that requests memory per slot, e.g. 'h_vmem' or 'mem_free'; "
        "unset: no memory request (SGE sites differ).",
    )

    @model_validator(mode="after")
    def _absolute(self) -> BatchOptions:
        if not self.work_dir.startswith("/"):
            raise ValueError("work_dir must be an absolute path")
        if self.bin_dir is not None and not self.bin_dir.startswith("/"):
            raise ValueError("bin_dir must be an absolute path")
        _check_env_names(self.environment)
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

    kind: Literal["local", "ssh"] = Field(
        "local", description="'local': on this host; 'ssh': on a login node, over one reused SSH connection."
    )
    host: str | None = Field(None, description="SSH: the login node's host name or address (required).")
    port: int = Field(22, ge=1, le=65535, description="SSH: the server's port.")
    user: str | None = Field(None, description="SSH: the remote user; unset: the local user name.")
    key_file: str | None = Field(
        None, description="SSH: private key file; unset: the default keys (~/.ssh/id_*) and the agent."
    )
    known_hosts: str | None = Field(
        None,
        description="SSH: known_hosts file the server's host key is checked against; unset: "
        "~/.ssh/known_hosts. Host keys are always checked.",
    )
    connect_timeout: Duration = Field(15.0, gt=0, description="SSH: timeout of opening the connection.")

    @model_validator(mode="after")
    def _ssh_needs_host(self) -> TransportOptions:
        if self.kind == "ssh" and not self.host:
            raise ValueError("transport kind 'ssh' needs a host")
        return self


class CloudOptions(_Section):
    """Options of cloud sites (ec2, openstack, libcloud, kubernetes). Credentials come only from
    files or environment variables named here, never from this file."""

    region: str | None = Field(
        None, description="Region (EC2, OpenStack region name, libcloud region); unset: the SDK's default."
    )
    endpoint_url: str | None = Field(
        None,
        description="API endpoint: EC2 endpoint URL, libcloud host URL, Kubernetes API server; unset: the "
        "SDK's default (OpenStack takes its auth URL from clouds.yaml or OS_AUTH_URL).",
    )
    image: str | None = Field(
        None, description="Image of the pilots: AMI id (EC2), image id (OpenStack, libcloud), container image (k8s)."
    )
    instance_type: str | None = Field(
        None, description="Instance type (EC2), flavor name or id (OpenStack), size id (libcloud)."
    )
    network: str | None = Field(None, description="Subnet id (EC2) or network id (OpenStack, libcloud).")
    key_name: str | None = Field(None, description="SSH key pair name installed on the instances (debugging).")
    security_groups: tuple[str, ...] = Field((), description="Security group ids (EC2) or names (OpenStack).")
    spot: bool = Field(False, description="EC2: request spot instances (one-time, terminated on interruption).")
    spot_max_price: str | None = Field(None, description="EC2: highest spot price per hour; unset: on-demand price.")
    profile: str | None = Field(
        None, description="Credentials profile: AWS profile (EC2) or cloud name in clouds.yaml (OpenStack)."
    )
    credentials_file: str | None = Field(
        None,
        description="File holding credentials: AWS shared credentials file (EC2), clouds.yaml (OpenStack), "
        "kubeconfig (Kubernetes). Unset: the SDK's environment variables and default files.",
    )
    key_env: str = Field(
        "CAMPUS_FACTORY_CLOUD_KEY", description="libcloud: environment variable holding the access key / user."
    )
    secret_env: str = Field(
        "CAMPUS_FACTORY_CLOUD_SECRET", description="libcloud: environment variable holding the secret key."
    )
    driver: str | None = Field(None, description="libcloud: the compute driver name, e.g. 'ec2', 'openstack', 'gce'.")
    driver_options: dict[str, str | int | bool] = Field(
        default_factory=dict,
        description="libcloud: more (non-secret) driver arguments, e.g. signature_version = '4'.",
    )
    namespace: str = Field("default", description="Kubernetes: namespace the pilot pods run in.")
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="More tags (EC2), metadata (OpenStack, libcloud) or labels (k8s) on every instance.",
    )
    max_attempts: int = Field(
        4, ge=1, le=10, description="Attempts of each API call, retries of throttling and 5xx errors included."
    )
    request_timeout: Duration = Field(30.0, gt=0, description="Connect and read timeout of each API call.")
    join_timeout: Duration = Field(
        1200.0, gt=0, description="An instance whose startd has not joined the pool after this long is terminated."
    )
    orphan_grace: Duration = Field(
        600.0,
        ge=0,
        description="An instance carrying this factory's tags but unknown to the ledger is terminated after "
        "this long (covers a factory that crashed between the API call and the ledger write).",
    )

    @model_validator(mode="after")
    def _endpoint(self) -> CloudOptions:
        if self.endpoint_url is not None and not re.match(r"^https?://[^\s/]+", self.endpoint_url):
            raise ValueError("endpoint_url must be an http(s) URL")
        for name in (self.key_env, self.secret_env):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return self


class BudgetOptions(_Section):
    """Spend ceilings, in the unit of cost_per_core_hour (unset: no ceiling)."""

    max_per_hour: float | None = Field(
        None, ge=0, description="Highest spend rate: cost per hour of all live pilots, new ones included."
    )
    max_per_day: float | None = Field(
        None,
        ge=0,
        description="Highest spend over the last 24 hours plus one more hour of all live pilots, new ones included.",
    )


class RemoteHTCondorOptions(_Section):
    """Options of htcondor sites: pilots submitted to another pool's schedd or to an HTCondor-CE.
    Authentication is the HTCondor client configuration of the factory's account (e.g. an IDTOKEN
    in ~/.condor/tokens.d)."""

    collector: str | None = Field(
        None, description="The remote pool's collector, host:port (an HTCondor-CE: its host:9619). Required."
    )
    schedd: str | None = Field(None, description="Name of the schedd to submit to; unset: the collector's first.")
    requirements: str | None = Field(None, description="ClassAd expression added to the pilots' Requirements.")
    submit: dict[str, str] = Field(
        default_factory=dict,
        description="More submit commands, e.g. accounting_group = 'group_physics'.",
    )


class SiteConfig(_Section):
    """One place pilots can be started."""

    name: str = Field(..., pattern=_NAME, description="Unique site name (letters, digits, _ . -).")
    provider: Literal[
        "slurm", "pbs", "sge", "lsf", "htcondor", "fake", "local", "ec2", "openstack", "libcloud", "kubernetes"
    ] = Field(
        ...,
        description="Kind of site: slurm, pbs, sge, lsf, htcondor (another pool's schedd or an HTCondor-CE), "
        "local (processes on this host), fake (in memory, tests), "
        "ec2, openstack, libcloud (other clouds), kubernetes (pods as pilots).",
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
    cloud: CloudOptions = Field(default_factory=CloudOptions)
    budget: BudgetOptions = Field(default_factory=BudgetOptions)
    htcondor: RemoteHTCondorOptions = Field(default_factory=RemoteHTCondorOptions)


class ApiOptions(_Section):
    """The REST API, the Prometheus metrics and the dashboard (``campus-factory api serve``)."""

    host: str = Field("127.0.0.1", description="Address the API listens on; keep it on loopback behind a proxy.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the API.")
    token_file: str | None = Field(
        None,
        description="File holding the bearer token that mutating actions (pause, drain) require; "
        "it should be readable by the factory's user only.",
    )
    token_env: str | None = Field(
        None,
        description="Environment variable holding the bearer token, used when token_file is unset. "
        "With neither, mutating actions are refused.",
    )
    read_only_open: bool = Field(
        True,
        description="Read-only endpoints (sites, pilots, plan, accounting, metrics) need no token; "
        "false: they require the bearer token too (the dashboard then asks for it).",
    )
    history_window: Duration = Field(
        6 * 3600.0, gt=0, description="How far back the dashboard's pilots-by-state chart looks."
    )


class LoggingOptions(_Section):
    """Log records of the factory and the API (always on stderr; secrets are masked)."""

    format: Literal["text", "json"] = Field(
        "text", description="'text': one readable line per record; 'json': one JSON object per line."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest level logged.")


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
    nul = _nul_path(data)
    if nul is not None:
        raise ConfigError(f"{source}: 1 problem(s) in the config", [(nul, "contains a NUL character")])
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
    except RecursionError:  # tomllib recurses once per level of nested arrays or inline tables
        raise ConfigError(f"{p}: not valid TOML: arrays or inline tables are nested too deeply") from None
    return parse_config(data, str(p))
