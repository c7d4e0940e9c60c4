"""Config of cloud sites: where the instances run, and which instance types (flavors) they may be."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from ._base import Duration, _Section
from ._grammar import fullmatch

__all__ = ["INSTANCE_TYPE", "CloudOptions", "InstanceTypeOption"]

#: instance type and flavor names or ids: EC2 ``m5.large``, OpenStack ``m1.small``, a flavor id, or a
#: flavor name with spaces (``4GB Standard Instance``); one line, no leading or trailing space
INSTANCE_TYPE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._:+()-]{0,98}[A-Za-z0-9)])?")


class InstanceTypeOption(_Section):
    """One instance type (EC2) or flavor (OpenStack) the site may start. Its cores, memory and
    disk are read from the cloud (EC2 DescribeInstanceTypes, OpenStack's flavor list) unless
    declared here; a type with both ``cpus`` and ``memory_mb`` declared is not looked up."""

    name: str = Field(..., description="The instance type (EC2, e.g. 'm5.large') or the flavor's name or id.")
    cost_per_hour: float | None = Field(
        None,
        ge=0,
        le=1e6,
        description="What one instance of this type costs per hour (the site's currency); unset: the site's "
        "cost_per_core_hour times its cores. The planner starts the cheapest type that fits. Spend ceilings "
        "(budget) count a core at the dearest per-core price of the types.",
    )
    cpus: int | None = Field(None, ge=1, le=100_000, description="Cores of the type; unset: read from the cloud.")
    memory_mb: int | None = Field(
        None, ge=1, le=1 << 31, description="Memory of the type in MB (MiB); unset: read from the cloud."
    )
    disk_mb: int | None = Field(
        None,
        ge=0,
        le=1 << 40,
        description="Scratch disk in MB; unset: the type's local disk as the cloud lists it, or slot.disk_mb "
        "where it lists none (EBS-only types, flavors booting from volume).",
    )
    gpus: int | None = Field(
        None, ge=0, le=10_000, description="GPUs of the type; unset: read from the cloud (EC2), else 0."
    )

    @model_validator(mode="after")
    def _name(self) -> InstanceTypeOption:
        if not fullmatch(INSTANCE_TYPE, self.name):
            raise ValueError(
                f"{self.name!r} is not an instance type or flavor name (letters, digits, space . _ : + ( ) -; "
                "at most 100)"
            )
        return self

    @property
    def declared(self) -> bool:
        """Whether the config gives the shape, so the cloud need not be asked."""
        return self.cpus is not None and self.memory_mb is not None


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
        None,
        description="Instance type (EC2), flavor name or id (OpenStack), size id (libcloud): every pilot is "
        "one of these. For several, list them in instance_types instead.",
    )
    instance_types: tuple[InstanceTypeOption, ...] = Field(
        (),
        description="EC2 and OpenStack: the instance types (flavors) pilots may be, e.g. "
        "[{name = 'm5.large', cost_per_hour = 0.096}, {name = 'm5.xlarge', cost_per_hour = 0.192}]. With "
        "several, each new pilot is the cheapest type that fits the jobs it is started for (ties: the "
        "smallest), and its startd offers the type's cores and memory; with slot.sizing = 'auto' such a "
        "site sizes pilots to demand ('fit'). Replaces instance_type.",
    )
    instance_types_ttl: Duration = Field(
        6 * 3600.0,
        gt=0,
        description="How long the shapes read from the cloud for instance_types are kept before they are "
        "read again (they are read at the first cycle, not every cycle).",
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
        if self.instance_types and self.instance_type is not None:
            raise ValueError("give either cloud.instance_type (one type) or cloud.instance_types (several), not both")
        names = [t.name for t in self.instance_types]
        if len(set(names)) != len(names):
            raise ValueError("an instance type is listed twice in cloud.instance_types")
        for name in (self.key_env, self.secret_env):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return self
