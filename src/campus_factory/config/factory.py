"""Config sections of the factory itself: pool, factory, pilot (and its token), API, logging."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ._base import _NAME, Duration, _check_env_names, _Section
from ._grammar import (
    IDENTITY,
    MAX_QUEUE_ALLOWANCE,
    SCRATCH,
    WORD,
    check_collector,
    check_config_values,
    check_knob_names,
    check_ledger_url,
    check_names,
    fullmatch,
)

__all__ = [
    "ApiOptions",
    "FactoryOptions",
    "FlockSource",
    "LoggingOptions",
    "PilotOptions",
    "PoolOptions",
    "TokenOptions",
]

#: an HTCondor authenticated identity, user@domain, matched in full
_IDENTITY = r"^[A-Za-z0-9_.-]{1,64}@[A-Za-z0-9_.-]{1,128}\Z"
_ADDRESS = r"^[A-Za-z0-9_.:\[\]-]{1,255}$"  # pydantic patterns are Rust regexes: $ is the very end


class FlockSource(_Section):
    """A pool whose schedds flock idle jobs to this one (the Campus Grid Factory topology).

    The factory reads the idle jobs of ``schedds`` (located through ``collector``, the campus
    pool's collector) and plans pilots only for the jobs no slot of the campus pool could run:
    each job group is matched against the campus pool's own slot ads, taken as if empty.
    """

    name: str = Field(pattern=_NAME, description="Label of the campus pool (logs, doctor, condor-config --campus).")
    collector: str = Field(pattern=_ADDRESS, description="Address of the campus pool's collector.")
    schedds: tuple[str, ...] = Field(
        min_length=1, description="Names of the campus schedds that flock here (their Name in the campus collector)."
    )
    schedd_identity: str = Field(
        "flock-{name}@campus-factory",
        description="Identity of those schedds at this pool's collector ({name} is replaced): an IDTOKEN this "
        "pool mints for them with ADVERTISE_SCHEDD; `condor-config --flock-from` allows exactly it.",
    )
    negotiator_identity: str = Field(
        "negotiator@{name}",
        description="Identity of this pool's negotiator at the campus schedds ({name} is replaced): an IDTOKEN "
        "the campus pool mints with NEGOTIATOR, kept in the central manager's tokens.d; "
        "`condor-config --flock-to` allows exactly it in ALLOW_NEGOTIATOR_SCHEDD.",
    )
    wait_for_campus: Duration | None = Field(
        None,
        ge=0,
        le=30 * 86400,
        description="Jobs some campus slot could run are left to the campus pool; with this set, such a job "
        "idle for longer than it counts as demand too (the campus is full). Unset: never.",
    )

    @model_validator(mode="after")
    def _identities(self) -> FlockSource:
        for label in ("schedd_identity", "negotiator_identity"):
            value = getattr(self, label).replace("{name}", self.name)
            if not re.match(_IDENTITY, value):
                raise ValueError(f"{label} {value!r} is not an identity of the form user@domain")
        for s in self.schedds:
            if not re.match(r"^[A-Za-z0-9_.@-]{1,255}\Z", s):
                raise ValueError(f"schedd name {s!r}: letters, digits, '_', '.', '@', '-' only")
        return self

    @property
    def schedd_id(self) -> str:
        return self.schedd_identity.replace("{name}", self.name)

    @property
    def negotiator_id(self) -> str:
        return self.negotiator_identity.replace("{name}", self.name)


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
    flock_from: tuple[FlockSource, ...] = Field(
        (),
        description="Campus pools whose schedds flock to this pool: their idle jobs that no campus slot could "
        "run are demand too (see docs/routes.md, 'A separate factory pool').",
    )

    @model_validator(mode="after")
    def _unique_flock_sources(self) -> PoolOptions:
        names = [f.name for f in self.flock_from]
        if len(names) != len(set(names)):
            raise ValueError("pool.flock_from: each campus pool needs its own name")
        return self

    @field_validator("collector")
    @classmethod
    def _collector(cls, value: str) -> str:
        return check_collector(value)

    @field_validator("schedds")
    @classmethod
    def _schedds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_names(value, WORD, "a schedd name")
        return value


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

    @field_validator("ledger_url")
    @classmethod
    def _ledger(cls, value: str) -> str:
        return check_ledger_url(value)


class TokenOptions(_Section):
    """How the factory mints each submission's IDTOKEN (run where the pool's signing key is)."""

    identity: str = Field(
        "pilot-{site}@campus-factory",
        description="Identity in the token; {site} is replaced. The pool's ALLOW_ADVERTISE_STARTD must match it.",
    )
    queue_allowance: Duration = Field(
        86400.0,
        ge=0,
        le=MAX_QUEUE_ALLOWANCE,
        description="Token lifetime beyond the pilot walltime, to cover time waiting in the queue (at most 14 days).",
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
        if self.key is not None:
            check_names([self.key], WORD, "a signing key name")
        if not fullmatch(IDENTITY, self.identity.replace("{site}", "site")):
            raise ValueError(f"identity {self.identity!r} is not of the form user@domain ({{site}} allowed in user)")
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

    @field_validator("scratch")
    @classmethod
    def _scratch(cls, value: str) -> str:
        if not fullmatch(SCRATCH, value):
            raise ValueError(
                f"{value[:60]!r} is not a scratch directory (a path; letters, digits, _ / . - : and ${{}})"
            )
        return value

    @field_validator("extra_config")
    @classmethod
    def _knobs(cls, value: dict[str, str]) -> dict[str, str]:
        check_knob_names(value, "pilot.extra_config")
        check_config_values(value.values(), "pilot.extra_config")
        return value


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
