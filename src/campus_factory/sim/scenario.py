"""Scenarios: a factory config plus a ``[simulation]`` table saying how each site behaves.

A scenario file is an ordinary campus-factory TOML config (every site with ``provider =
"fake"`` or any other kind: the simulator replaces providers) with one more table::

    [simulation]
    seed = 1
    negotiator_interval = "60s"
    [simulation.sites.hpc]
    queue_wait = "5m"          # median time a pilot waits in the site's queue
    queue_wait_sigma = 0.6     # lognormal spread (0: always the median)
    boot = "1m"                # from the batch job starting to the startd joining
    capacity = 40              # whole slots' worth of cores the site runs for us at once (unset: no limit)
    preempt_per_hour = 0.0     # preemption rate of a running pilot
    failure_rate = 0.0         # share of pilots that fail before joining

The built-in demo campus (:data:`DEMO_CAMPUS_TOML`, also in ``examples/demo/campus.toml``) has
two clusters and one cloud.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import Duration, parse_config
from ..errors import ConfigError
from .engine import Scenario, SimSettings
from .sites import SiteModel
from .workloads import JobSpec, bursty_workload

__all__ = [
    "DEMO_CAMPUS_TOML",
    "demo_scenario",
    "demo_whole_slot_scenario",
    "demo_workload",
    "load_scenario",
    "scenario_from_dict",
    "whole_slot_variant",
]


class _SiteBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_wait: Duration = Field(120.0, ge=0)
    queue_wait_sigma: float = Field(0.5, ge=0)
    boot: Duration = Field(60.0, ge=0)
    capacity: int | None = Field(None, ge=0)
    preempt_per_hour: float = Field(0.0, ge=0)
    failure_rate: float = Field(0.0, ge=0, le=1)
    fail_after: Duration = Field(30.0, ge=0)


class _Simulation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 1
    negotiator_interval: Duration = Field(60.0, gt=0)
    sample_interval: Duration = Field(600.0, gt=0)
    drain_hours: float = Field(12.0, gt=0)
    sites: dict[str, _SiteBehaviour] = Field(default_factory=dict)


def scenario_from_dict(data: dict[str, Any], source: str = "<scenario>", *, seed: int | None = None) -> Scenario:
    """A scenario from a parsed TOML document (the ``simulation`` table is optional)."""
    data = dict(data)
    raw = data.pop("simulation", {})
    config = parse_config(data, source)
    try:
        sim = _Simulation.model_validate(raw)
    except ValidationError as exc:
        problems = [("simulation." + ".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in exc.errors()]
        raise ConfigError(f"{source}: {len(problems)} problem(s) in [simulation]", problems) from exc
    unknown = set(sim.sites) - {s.name for s in config.sites}
    if unknown:
        raise ConfigError(f"{source}: [simulation.sites] names unknown site(s): {', '.join(sorted(unknown))}")
    models = {
        name: SiteModel(
            queue_wait_s=b.queue_wait,
            queue_wait_sigma=b.queue_wait_sigma,
            boot_s=b.boot,
            capacity=b.capacity,
            preempt_per_hour=b.preempt_per_hour,
            failure_rate=b.failure_rate,
            fail_after_s=b.fail_after,
        )
        for name, b in sim.sites.items()
    }
    settings = SimSettings(
        seed=sim.seed if seed is None else seed,
        negotiator_interval_s=sim.negotiator_interval,
        sample_interval_s=sim.sample_interval,
        drain_hours=sim.drain_hours,
    )
    return Scenario(config, models, settings)


def load_scenario(path: str | Path, *, seed: int | None = None) -> Scenario:
    """Read a scenario TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such scenario file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the scenario: {exc}") from exc
    return scenario_from_dict(data, str(p), seed=seed)


DEMO_CAMPUS_TOML = """\
# The demo campus: two clusters and one cloud, simulated (campus-factory demo / simulate).
# Try a what-if: copy this file, change a site, and run
#   campus-factory simulate --config my-campus.toml --workload examples/demo/burst.csv

[factory]
name = "demo"
cycle_interval = "60s"

[pilot]
retire_margin = "10m"

# A Slurm cluster with big nodes, CVMFS and a long walltime: the preferred site.
[[sites]]
name = "hpc"
provider = "fake"
walltime = "12h"
idle_timeout = "10m"
rank = 2
[sites.slot]
cpus = 16
memory_mb = 64000
disk_mb = 200000
attributes = { HasCVMFS = true, OpSysMajorVer = 9 }
[sites.limits]
max_pilots = 40
max_queued = 10
max_submit_per_cycle = 10

# An older PBS cluster: no CVMFS, preemptable pilots, jobs of at most 4 cores.
[[sites]]
name = "campus"
provider = "fake"
walltime = "6h"
idle_timeout = "10m"
rank = 1
preemptable = true
[sites.slot]
cpus = 8
memory_mb = 16000
disk_mb = 80000
start = "TARGET.RequestCpus <= 4"
attributes = { HasCVMFS = false, OpSysMajorVer = 8 }
[sites.limits]
max_pilots = 30
max_queued = 10
max_submit_per_cycle = 10

# A cloud project: VMs start fast, cost $0.03 per core-hour, used last.
[[sites]]
name = "cloud"
provider = "fake"
walltime = "24h"
idle_timeout = "5m"
rank = 0
cost_per_core_hour = 0.03
[sites.slot]
cpus = 8
memory_mb = 32000
disk_mb = 100000
attributes = { HasCVMFS = true, IsCloudNode = true, OpSysMajorVer = 9 }
[sites.limits]
max_pilots = 50
max_queued = 20
max_submit_per_cycle = 20

[simulation]
seed = 1
negotiator_interval = "60s"
sample_interval = "10m"

[simulation.sites.hpc]
queue_wait = "5m"
queue_wait_sigma = 0.6
boot = "1m"
capacity = 40

[simulation.sites.campus]
queue_wait = "2m"
queue_wait_sigma = 0.8
boot = "45s"
preempt_per_hour = 0.05
failure_rate = 0.02

[simulation.sites.cloud]
queue_wait = "1m"
queue_wait_sigma = 0.3
boot = "2m"
"""


def demo_scenario(*, seed: int | None = None) -> Scenario:
    """The built-in demo campus."""
    return scenario_from_dict(tomllib.loads(DEMO_CAMPUS_TOML), "demo campus", seed=seed)


def whole_slot_variant(data: dict[str, Any]) -> dict[str, Any]:
    """A scenario with whole-slot pilots at every site (``slot.sizing = "fixed"``): what the
    factory did before pilots were sized to demand by default (``examples/demo/whatif-whole-slot.toml``
    is this of the demo campus). Limits and capacities mean the same cores either way."""
    out = copy.deepcopy(data)
    for site in out.get("sites", []):
        site.setdefault("slot", {})["sizing"] = "fixed"
    return out


def demo_whole_slot_scenario(*, seed: int | None = None) -> Scenario:
    """The demo campus with whole-slot pilots (:func:`whole_slot_variant`)."""
    data = whole_slot_variant(tomllib.loads(DEMO_CAMPUS_TOML))
    return scenario_from_dict(data, "demo campus, whole-slot pilots", seed=seed)


def demo_workload(jobs: int = 3000, *, seed: int = 1) -> list[JobSpec]:
    """The demo burst: half the jobs at once, a fifth 90 minutes later, the rest over 3 hours."""
    return bursty_workload(jobs, 3.0, seed=seed, burst_at=((0.0, 0.5), (1.5, 0.2)))
