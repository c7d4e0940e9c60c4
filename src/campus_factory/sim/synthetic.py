"""Synthetic but realistic planner inputs: demand, sites and pilots, from a seed.

Demand: job groups of a Zipf-like size distribution summing exactly to the job count, owned by
users in accounting groups, with the Requirements condor_submit writes (Arch, OpSys, Disk,
Memory, Cpus, HasFileTransfer, the CondorVersion check) plus extras drawn per group: CVMFS,
GPUs with a CUDA capability, cloud-only / no-cloud routes, a site list or pattern, an OS
version, and a few that no site satisfies. Sites: varied slot sizes, GPU sites, cloud sites,
CVMFS, START policies, allowed owners, ranks and costs, built through the real config and
:func:`planner.inputs.site_spec`. Pilots: some queued, running (partly busy) and retiring.
Same seed, same inputs.
"""

from __future__ import annotations

import random
from typing import Any

from ..config import parse_config
from ..domain import JobGroup
from ..planner.inputs import site_spec
from ..planner.types import PilotView, SiteSpec

__all__ = ["synthetic_demand", "synthetic_pilots", "synthetic_site_configs", "synthetic_sites"]

_BASE = (
    '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Disk >= RequestDisk) && '
    "(TARGET.Memory >= RequestMemory) && (TARGET.Cpus >= RequestCpus) && (TARGET.HasFileTransfer) && "
    '(versionGE(split(TARGET.CondorVersion)[1], "24.0.0") || TARGET.Disk >= RequestDisk)'
)
_EXTRAS = (
    ("", 40),
    ("(TARGET.HasCVMFS =?= true)", 20),
    ("(TARGET.IsCloudNode =!= true)", 8),
    ("(TARGET.IsCloudNode =?= true)", 4),
    ("(TARGET.OpSysMajorVer >= 9)", 8),
    ('regexp("^site-0[0-9]$", TARGET.CampusFactorySite)', 5),
    ('member(TARGET.CampusFactorySite, {"site-03", "site-17", "site-31"})', 4),
    ("(TARGET.CampusFactoryPreemptable =!= true) && (TARGET.HasCVMFS =?= true)", 6),
    ("(TARGET.HasMagicLicense =?= true)", 2),
    ("(TARGET.Memory >= 2 * RequestMemory) && (TARGET.OpSysMajorVer >= 8)", 3),
)


def _sizes(rng: random.Random, jobs: int, groups: int) -> list[int]:
    weights = [1.0 / (i + 1) ** 0.9 for i in range(groups)]
    rng.shuffle(weights)
    total = sum(weights)
    sizes = [max(1, int(jobs * w / total)) for w in weights]
    diff = jobs - sum(sizes)
    i = 0
    while diff != 0 and groups:
        step = 1 if diff > 0 else -1
        if sizes[i % groups] + step >= 1:
            sizes[i % groups] += step
            diff -= step
        i += 1
    return sizes


def synthetic_demand(jobs: int, groups: int, seed: int = 1) -> list[JobGroup]:
    """``groups`` job groups holding ``jobs`` idle jobs in all."""
    rng = random.Random(seed)
    users = [f"user{u:02d}" for u in range(40)]
    acct = {u: f"group_{('phys', 'chem', 'bio', 'cs', 'astro', 'eng')[i % 6]}" for i, u in enumerate(users)}
    extras = [e for e, _ in _EXTRAS]
    weights = [w for _, w in _EXTRAS]
    out = []
    for i, count in enumerate(_sizes(rng, jobs, groups)):
        owner = rng.choice(users)
        gpus = rng.choice((1, 1, 2)) if rng.random() < 0.04 else 0
        cpus = rng.choice((1, 1, 1, 1, 2, 4, 8)) if not gpus else rng.choice((4, 8))
        memory = rng.choice((1000, 2000, 2000, 4000, 8000, 16000)) * max(1, cpus // 2)
        req = _BASE
        extra = rng.choices(extras, weights)[0]
        if gpus:
            extra = "(TARGET.GPUs >= RequestGPUs) && (TARGET.CUDACapability >= 7.0)"
        if extra:
            req = f"{req} && {extra}"
        attributes = {"AcctGroup": f'"{acct[owner]}"'}
        if rng.random() < 0.3:
            attributes["MaxWallTimeMins"] = str(rng.choice((60, 240, 720, 2880)))
        out.append(
            JobGroup(
                group_id=f"g{i:05d}",
                count=count,
                cpus=cpus,
                memory_mb=memory,
                disk_mb=rng.choice((500, 1000, 4000, 20000)),
                gpus=gpus,
                owner=owner,
                requirements=req,
                attributes=attributes,
                schedd=f"schedd{i % 3}",
                jobs=tuple(f"{1000 + i}.{p}" for p in range(min(count, 3))),
            )
        )
    return out


def synthetic_site_configs(sites: int, seed: int = 1) -> list[dict[str, Any]]:
    """Site tables as a TOML config would hold them."""
    rng = random.Random(seed + 1000)
    out = []
    for i in range(sites):
        gpu = i % 10 == 7
        cloud = i % 5 == 4
        cpus = rng.choice((8, 16, 32, 48, 64))
        slot: dict[str, Any] = {
            "cpus": cpus,
            "memory_mb": cpus * rng.choice((2000, 4000, 8000)),
            "disk_mb": cpus * 20000,
            "gpus": 4 if gpu else 0,
            "attributes": {"OpSysMajorVer": rng.choice((8, 9, 9)), "IsCloudNode": cloud},
        }
        if rng.random() < 0.6:
            slot["attributes"]["HasCVMFS"] = True
        if gpu:
            slot["attributes"]["CUDACapability"] = rng.choice((6.1, 7.5, 8.0))
        if i % 7 == 3:
            slot["start"] = "TARGET.RequestMemory <= 8000"
        max_pilots = rng.choice((20, 50, 100, 500))
        site: dict[str, Any] = {
            "name": f"site-{i:02d}",
            "provider": "fake",
            "walltime": rng.choice((4 * 3600, 24 * 3600, 48 * 3600)),
            "slot": slot,
            "limits": {
                "max_pilots": max_pilots,
                "max_queued": max(1, max_pilots // 5),
                "max_submit_per_cycle": rng.choice((5, 10, 25)),
            },
            "rank": rng.choice((0, 0, 1, 2)),
            "cost_per_core_hour": 0.0 if not cloud else round(rng.uniform(0.01, 0.05), 3),
            "preemptable": rng.random() < 0.3,
        }
        if i % 9 == 5:
            site["allowed_owners"] = [f"user{u:02d}" for u in rng.sample(range(40), 8)]
            site["allowed_groups"] = ["group_phys"]
        out.append(site)
    return out


def synthetic_sites(sites: int, seed: int = 1) -> list[SiteSpec]:
    """Planner site specs built through the config schema and :func:`site_spec`."""
    cfg = parse_config({"sites": synthetic_site_configs(sites, seed)})
    return [site_spec(s) for s in cfg.sites]


def synthetic_pilots(sites: list[SiteSpec], now: float, seed: int = 1) -> list[PilotView]:
    """Live pilots at each site: queued, running (some partly busy) and retiring."""
    rng = random.Random(seed + 2000)
    out = []
    for s in sites:
        for j in range(rng.randint(0, min(20, s.max_pilots))):
            state = rng.choice(("queued", "running", "running", "joined", "retiring"))
            pid = f"{s.name}-p{j:03d}"
            since = now - rng.uniform(0, 3600)
            if state in ("running", "joined"):
                used = rng.randint(0, s.cpus)
                out.append(
                    PilotView(
                        pid,
                        s.name,
                        state,
                        since,
                        used > 0,
                        True,
                        s.cpus - used,
                        max(0, s.memory_mb - used * (s.memory_mb // s.cpus)),
                        s.disk_mb,
                        s.gpus,
                        since + s.walltime_s,
                    )
                )
            else:
                out.append(PilotView(pid, s.name, state, since, None, True))
    return out
