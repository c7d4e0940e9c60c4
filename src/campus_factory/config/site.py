"""Config sections of a site: slot, limits, batch, isolation, transport, cloud, budget, remote HTCondor."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import _NAME, Duration, _check_env_names, _Section
from ._grammar import (
    ATTRIBUTE,
    MAX_WALLTIME,
    SUBMIT_KEY,
    WORD,
    check_attribute_names,
    check_collector,
    check_names,
    check_one_line,
)
from .cloud import CloudOptions

__all__ = [
    "CLOUD_PROVIDERS",
    "FIXED_SHAPE_PROVIDERS",
    "SIZED_CLOUD_PROVIDERS",
    "BatchOptions",
    "BudgetOptions",
    "CloudOptions",
    "IsolationOptions",
    "RemoteHTCondorOptions",
    "SiteConfig",
    "SiteLimits",
    "SlotResources",
    "TransportOptions",
]


class SlotResources(_Section):
    """What one pilot at a site offers (its partitionable slot)."""

    cpus: int = Field(1, ge=1, le=100_000, description="Cores per pilot.")
    memory_mb: int = Field(2048, ge=1, le=1 << 31, description="Memory per pilot, in MB.")
    disk_mb: int = Field(10240, ge=0, le=1 << 40, description="Scratch disk per pilot, in MB.")
    gpus: int = Field(0, ge=0, le=10_000, description="GPUs per pilot.")
    sizing: Literal["auto", "fixed", "fit"] = Field(
        "auto",
        description="How big new pilots are. 'fit': the resources above are the largest pilot; each new "
        "pilot asks for one job's resources (RequestCpus, RequestMemory, RequestDisk, RequestGPUs of the "
        "group it is started for; memory and disk in proportion to the cores when the job requests none), "
        "so no pilot keeps free cores while its last jobs finish; it then runs only jobs that take all the "
        "cores it asked for (its START requires RequestCpus >= them), and the pilot limits count cores in "
        "whole slots (max_pilots = 10 with cpus = 16: 160 cores in pilots of any size). 'fixed': every "
        "pilot has the resources above (sites that only take whole nodes). 'auto': 'fit' where the "
        "provider can size a pilot (batch systems, remote HTCondor, Kubernetes, fake, and ec2 and openstack "
        "sites listing several cloud.instance_types), 'fixed' on other ec2, openstack, libcloud and local "
        "sites. At a cloud site with cloud.instance_types, a fit pilot is the cheapest listed type that fits "
        "its jobs, takes any job that fits it, and offers the type's resources (the slot's cpus, memory_mb "
        "and gpus are unused there; disk_mb is the disk of types that list none).",
    )
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
        from ..classads import ClassAdError, check_expression

        check_attribute_names(self.attributes, "slot.attributes")
        check_attribute_names(self.expressions, "slot.expressions")
        check_names((*self.learn_attributes, *self.pinned), ATTRIBUTE, "a ClassAd attribute name")
        low = [n.lower() for n in (*self.attributes, *self.expressions)]
        if len(set(low)) != len(low):
            raise ValueError("an attribute is declared twice (names are case-insensitive)")
        for key, text in (("start", self.start), *((f"expressions.{k}", v) for k, v in self.expressions.items())):
            try:
                check_expression(text)
            except ClassAdError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return self


class SiteLimits(_Section):
    """Limits the planner never exceeds at a site."""

    max_pilots: int = Field(
        10,
        ge=0,
        description="Pilots alive at once (requested, queued or running). At a site with fit pilots, this "
        "and max_queued, max_submit_per_cycle and ceiling count cores in whole slots (times slot.cpus).",
    )
    max_queued: int = Field(5, ge=0, description="Pilots waiting in the site's queue at once.")
    max_submit_per_cycle: int = Field(5, ge=0, description="Pilots submitted in one cycle.")
    max_cores: int | None = Field(
        None,
        ge=1,
        description="Cores of this site's pilots alive at once (requested, queued or running), whatever "
        "their sizes; unset: only the pilot limits apply.",
    )
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
        "/opt/slurm-torque/usr/bin for Slurm's PBS wrappers; unset: found on PATH (Slurm, PBS, SGE, LSF).",
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
        check_one_line(
            (self.partition, self.account, self.qos, *self.extra_directives, self.work_dir, self.bin_dir),
            "batch",
        )
        check_one_line((self.sge_parallel_environment, self.sge_memory_complex), "batch")
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

    @model_validator(mode="after")
    def _checked(self) -> RemoteHTCondorOptions:
        from ..classads import ClassAdError, check_expression

        if self.collector is not None:
            check_collector(self.collector)
        if self.schedd is not None:
            check_names([self.schedd], WORD, "a schedd name")
        check_names(self.submit, SUBMIT_KEY, "a submit command name (letters, digits, _; +Attr or MY.Attr)")
        if self.requirements is not None:
            try:
                check_expression(self.requirements)
            except ClassAdError as exc:
                raise ValueError(f"requirements: {exc}") from None
        return self


#: providers whose pilots are cloud VMs or pods: they advertise IsCloudNode = True
CLOUD_PROVIDERS = frozenset({"ec2", "openstack", "libcloud", "kubernetes"})
#: providers whose pilots are one shape (an instance type, a local process): sizing 'auto' is 'fixed'
#: (at ec2 and openstack sites listing several cloud.instance_types: 'fit')
FIXED_SHAPE_PROVIDERS = frozenset({"ec2", "openstack", "libcloud", "local"})
#: cloud providers that choose among several instance types (cloud.instance_types)
SIZED_CLOUD_PROVIDERS = frozenset({"ec2", "openstack"})


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
    payload: Literal["command", "glidein"] | None = Field(
        None,
        description="What this site's pilots run, overriding pilot.payload (e.g. glideins on the clusters, "
        "a test command on one cloud); unset: pilot.payload.",
    )
    slot: SlotResources = Field(default_factory=SlotResources)
    limits: SiteLimits = Field(default_factory=SiteLimits)
    walltime: Duration = Field(
        4 * 3600.0, gt=0, le=MAX_WALLTIME, description="Walltime requested for each pilot (at most 30 days)."
    )
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
        description="Runtime assumed for jobs that declare none (MaxWallTimeMins, AllowedExecuteDuration) "
        "while their job group has fewer than 3 recorded runs (then the median of its recent runs is used): "
        "a running pilot with less lifetime left is not capacity for them.",
    )
    isolation: IsolationOptions = Field(default_factory=IsolationOptions)
    cloud: CloudOptions = Field(default_factory=CloudOptions)
    budget: BudgetOptions = Field(default_factory=BudgetOptions)
    htcondor: RemoteHTCondorOptions = Field(default_factory=RemoteHTCondorOptions)

    @field_validator("allowed_owners", "allowed_groups")
    @classmethod
    def _who(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_names(value, WORD, "a user or accounting group name (letters, digits, _ . @ + -)")
        return value

    @property
    def sizing(self) -> Literal["fixed", "fit"]:
        """The sizing in force: ``slot.sizing`` with 'auto' resolved by the provider."""
        if self.slot.sizing == "auto":
            if self.provider in SIZED_CLOUD_PROVIDERS and len(self.cloud.instance_types) > 1:
                return "fit"
            return "fixed" if self.provider in FIXED_SHAPE_PROVIDERS else "fit"
        return self.slot.sizing

    @model_validator(mode="after")
    def _cores(self) -> SiteConfig:
        if self.limits.max_cores is not None and self.sizing == "fixed" and self.limits.max_cores < self.slot.cpus:
            raise ValueError(
                f"limits.max_cores = {self.limits.max_cores} is less than one pilot's slot.cpus = {self.slot.cpus}: "
                "no pilot could start"
            )
        return self

    @model_validator(mode="after")
    def _sizing(self) -> SiteConfig:
        types = self.cloud.instance_types
        if types and self.provider not in SIZED_CLOUD_PROVIDERS:
            raise ValueError(
                f"cloud.instance_types is not supported on {self.provider} sites yet (only ec2 and openstack): "
                "use cloud.instance_type"
            )
        if self.slot.sizing == "fit" and self.provider == "libcloud":
            raise ValueError(
                'slot.sizing = "fit" is not supported on libcloud sites yet: their pilots are one size '
                '(cloud.instance_type); use sizing = "fixed"'
            )
        if self.slot.sizing == "fit" and self.provider in SIZED_CLOUD_PROVIDERS and not types:
            raise ValueError(
                f'slot.sizing = "fit" on an {self.provider} site needs the instance types to choose from in '
                'cloud.instance_types; with one type (cloud.instance_type) use sizing = "fixed"'
            )
        if self.slot.sizing == "fixed" and len(types) > 1:
            raise ValueError(
                'slot.sizing = "fixed" with several cloud.instance_types: pilots are one type at a fixed site; '
                'list one, or use sizing = "auto" or "fit" to choose among them'
            )
        return self
