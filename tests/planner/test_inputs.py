"""Building planner inputs from config, learned ads, ledger-like records and pool slots."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from campus_factory.config import parse_config
from campus_factory.errors import ConfigError
from campus_factory.planner import MatchCache, plan
from campus_factory.planner.inputs import health_settings, pilot_views, site_health_of, site_spec, site_specs
from campus_factory.pool.base import slot_from_ad
from campus_factory.pool.fake import pilot_ad

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campus.toml"
NOW = 1_000_000.0


def cfg(**site: Any):  # type: ignore[no-untyped-def]
    # whole-slot pilots: at a fit site Cpus and Memory are pinned (a pilot's ad is not the largest pilot)
    base: dict[str, Any] = {
        "name": "alpha",
        "provider": "fake",
        "slot": {"cpus": 8, "memory_mb": 16000, "sizing": "fixed"},
    }
    base.update(site)
    return parse_config({"sites": [base]}).sites[0]


PLANNER_KEYS = (
    "offline_ads",
    "offline_ad_lifetime",
    "offline_match_window",
    "rank",
    "cost_per_core_hour",
    "allowed_owners",
    "allowed_groups",
    "preemptable",
    "job_runtime",
    "start",
    "learn",
    "learn_attributes",
    "pinned",
    "floor",
    "ceiling",
    "backoff_after",
    "backoff_base",
    "backoff_max",
    "early_death",
    "join_timeout",
    "black_hole_after",
    "window",
    "HasCVMFS",
    "OpSysAndVer",
    "IsBigNode",
)


def test_every_commented_key_of_the_example_is_valid() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    first_site_end = text.index("[[sites]]", text.index("[[sites]]") + 1)
    # uncomment the planner's "# key = value" lines and "# [table]" headers in [pool] and the first site
    keys = "|".join(PLANNER_KEYS)
    head = re.sub(
        rf"^# ((?:\[sites\.(?:isolation|slot\.attributes|slot\.expressions)\])|(?:(?:{keys}) = .*))$",
        r"\1",
        text[:first_site_end],
        flags=re.M,
    )
    uncommented = head + text[first_site_end:]
    assert uncommented != text
    config = parse_config(tomllib.loads(uncommented))
    alpha = config.site("alpha")
    assert alpha.allowed_owners == ("alice", "bob") and alpha.limits.ceiling == 20
    assert alpha.slot.attributes["HasCVMFS"] is True and alpha.isolation.backoff_after == 2
    assert config.pool.offline_ads is False


def test_site_spec_carries_policy_into_the_slot_ad() -> None:
    s = cfg(
        rank=2,
        cost_per_core_hour=0.02,
        allowed_owners=["alice"],
        preemptable=True,
        limits={"floor": 1, "ceiling": 4},
        slot={"cpus": 8, "memory_mb": 16000, "attributes": {"HasCVMFS": True, "Site": "x"}, "start": "Cpus > 0"},
    )
    spec = site_spec(s)
    assert (spec.rank, spec.cost_per_core_hour, spec.floor, spec.ceiling) == (2, 0.02, 1, 4)
    ad = spec.slot_ad.as_dict()  # type: ignore[union-attr]
    assert ad["HasCVMFS"] == "true" and ad["Site"] == '"x"'
    assert ad["START"] == '(Cpus > 0) && member(TARGET.Owner, { "alice" })'
    assert ad["CampusFactoryPreemptable"] == "true"


def test_learned_ad_refines_resources_unless_pinned_or_off() -> None:
    learned = {"Memory": "15000", "Cpus": "8", "HasCVMFS": "true"}
    assert site_spec(cfg(), learned).memory_mb == 15000
    assert site_spec(cfg(slot={"cpus": 8, "memory_mb": 16000, "pinned": ["Memory"]}), learned).memory_mb == 16000
    off = site_spec(cfg(slot={"cpus": 8, "memory_mb": 16000, "learn": False}), learned)
    assert off.memory_mb == 16000 and off.slot_ad.get("HasCVMFS") is None  # type: ignore[union-attr]


def test_learned_from_a_real_pilot_ad_changes_matching() -> None:
    from campus_factory.domain import JobGroup

    slot = slot_from_ad(pilot_ad("alpha", "alpha-1", cpus=8, memory_mb=15000, used_cpus=2, HasCVMFS=True), NOW)
    assert slot is not None
    g = JobGroup("g", 1, memory_mb=1000, requirements="TARGET.HasCVMFS =?= true")
    cache = MatchCache()
    assert not cache.match(g, site_spec(cfg())).ok
    refined = site_spec(cfg(), slot.learned())
    assert cache.match(g, refined).ok and refined.cpus == 8 and refined.memory_mb == 15000


def test_bad_config_values_are_rejected() -> None:
    with pytest.raises(ConfigError, match="start"):
        cfg(slot={"start": "Cpus > ("})
    with pytest.raises(ConfigError, match="attribute name"):
        cfg(slot={"attributes": {"bad name": 1}})
    with pytest.raises(ConfigError, match="floor"):
        cfg(limits={"max_pilots": 2, "max_queued": 1, "floor": 3})


@dataclass
class Rec:
    pilot_id: str
    site: str
    state: str
    state_since: float
    job_id: str | None
    started_at: float | None
    walltime_s: float
    created_at: float = NOW - 1000
    joined_at: float | None = None
    ended_at: float | None = None
    cpus: int = 8
    memory_mb: int = 16000
    disk_mb: int = 10000
    gpus: int = 0


def test_pilot_views_with_and_without_the_pool() -> None:
    recs = [
        Rec("a-1", "alpha", "running", NOW - 100, "7", NOW - 100, 3600),
        Rec("a-2", "alpha", "queued", NOW, None, None, 3600),
    ]
    views = pilot_views(recs, retire_margin_s=300)
    assert views[0].busy is None and views[0].retire_at == NOW - 100 + 3600 - 300
    assert views[1].has_job_id is False and views[1].retire_at is None
    slot = slot_from_ad(pilot_ad("alpha", "a-1", cpus=8, used_cpus=8), NOW)
    assert slot is not None
    observed = pilot_views(recs, {"a-1": slot})
    assert observed[0].busy is True and observed[0].free_cpus == 0


def test_site_specs_and_health_from_records() -> None:
    site = cfg(isolation={"backoff_after": 1, "backoff_base": 60})
    history = [Rec("a-1", "alpha", "failed", NOW - 10, None, None, 3600, created_at=NOW - 20, ended_at=NOW - 10)]
    health = site_health_of(site, history, NOW, joins_observed=False)
    assert health.state == "backoff"
    assert health_settings(site, joins_observed=False).join_timeout_s is None
    specs = site_specs([site], health={"alpha": health}, unhealthy={}, offline={"alpha": 3})
    assert specs[0].health is health and specs[0].offline_requests == 3
    p = plan([], specs, [], NOW)
    assert p.site("alpha").submit == 0 and p.site("alpha").health == "backoff"


def test_the_planner_imports_no_io_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys, campus_factory.planner, campus_factory.planner.inputs; "
        "bad = [m for m in sys.modules if m.startswith(('campus_factory.providers', 'campus_factory.transport', "
        "'campus_factory.ledger', 'campus_factory.demand.htcondor', 'campus_factory.pool', "
        "'sqlalchemy'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
