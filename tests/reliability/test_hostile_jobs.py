"""Hostile job attributes, from real ClassAds to the batch script (hypothesis).

Job ads whose Owner, Requirements, CampusFactoryRoute and custom attributes hold shell
metacharacters, newlines, quotes, heredoc delimiters, huge or non-UTF-8 values go through the
demand grouping (demand/htcondor.py), the planner and the Slurm provider's script rendering with
a recording executor. The loop always returns a report; malformed ads are skipped with a warning;
no value reaches a script: the scripts parse (``bash -n``), never contain the payload, and running
them never creates the sentinel file the payloads try to create. No hostile attribute, a string
Requirements included, makes a job look like another owner's to a site's allowed owners.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import classad2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.reliability.fakes import HOSTILE, PAYLOADS, SENTINEL, RecordingSlurm, bash_syntax_ok, run_script

from campus_factory.config import Config, parse_config
from campus_factory.demand import StaticDemand
from campus_factory.demand.htcondor import group_job_ads
from campus_factory.ledger import Ledger
from campus_factory.loop.factory import CycleReport, Factory
from campus_factory.providers.slurm import SlurmProvider


def make_config(tmp: Path, name: str) -> Config:
    slot = {"cpus": 1, "memory_mb": 1000, "disk_mb": 0}
    limits = {"max_pilots": 50, "max_queued": 50, "max_submit_per_cycle": 2}
    return parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp}/ledger.sqlite"},
            "pilot": {"payload": "command", "command": ["true"]},
            "sites": [
                {"name": "open", "provider": "slurm", "slot": slot, "limits": limits, "walltime": "1h"},
                {
                    "name": "alice-only",
                    "provider": "slurm",
                    "slot": slot,
                    "limits": limits,
                    "walltime": "1h",
                    "allowed_owners": ["alice"],
                },
            ],
        }
    )


def job_ad(cluster: int, owner: str, route: str, custom: str, requirements: str, literal: bool = False) -> Any:
    ad = classad2.ClassAd()
    ad["ClusterId"], ad["ProcId"] = cluster, 0
    ad["Owner"], ad["CampusFactoryRoute"], ad["CampusFactoryEvil"] = owner, route, custom
    ad["RequestCpus"], ad["RequestMemory"], ad["RequestDisk"] = 1, 100, 1024
    if literal:  # a job's owner may set any value with condor_qedit, a string included
        ad["Requirements"] = requirements
        return ad
    try:
        ad["Requirements"] = classad2.ExprTree(requirements)
    except Exception:  # not an expression: the job refers to its hostile attribute instead
        ad["Requirements"] = classad2.ExprTree(f"MY.CampusFactoryEvil =!= {classad2.quote(PAYLOADS[0])}")
    return ad


def run_cycle(groups: list[Any], tmp: Path) -> tuple[CycleReport, RecordingSlurm]:
    name = "h" + uuid.uuid4().hex[:6]
    cfg = make_config(tmp, name)
    ex = RecordingSlurm()
    providers = {s.name: SlurmProvider(s, cfg.pilot, ex, name) for s in cfg.sites}
    f = Factory(cfg, Ledger.open(cfg.factory.ledger_url), StaticDemand(groups), providers)
    try:
        report = asyncio.run(f.run_once())
    finally:
        f.ledger.close()
    return report, ex


def check_scripts(ex: RecordingSlurm, tmp: Path, hostile: list[str], *, execute: bool = True) -> None:
    for script in ex.scripts:
        assert str(SENTINEL) not in script
        for value in hostile:
            if len(value) >= 12:
                assert value not in script
        assert bash_syntax_ok(script, tmp) == ""
        if execute:
            proc = run_script(script, tmp)
            assert proc.returncode == 0, proc.stderr
    assert not SENTINEL.exists(), "a hostile value was executed by a pilot script"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    owner=st.one_of(st.sampled_from(["alice", "mallory"]), HOSTILE),
    route=st.one_of(st.just("cloud-only"), HOSTILE),
    custom=HOSTILE,
    requirements=st.one_of(st.just("TARGET.Memory >= 100"), HOSTILE),
    literal=st.booleans(),
)
# a string Requirements set with condor_qedit must not smuggle another Owner into the planner's job ad
@example(owner="mallory", route="cloud-only", custom="ok", requirements='true; Owner = "alice"', literal=True)
def test_hostile_job_attributes_never_reach_a_script(
    owner: str, route: str, custom: str, requirements: str, literal: bool
) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ads = [job_ad(1, owner, route, custom, requirements, literal), job_ad(2, "alice", "transparent", "ok", "true")]
        groups = group_job_ads(ads, "schedd")
        assert len(groups) == 2 or (owner == "alice" and custom == "ok")
        # what the ad holds (classad2 cuts a value at a NUL byte, as HTCondor does)
        assert {g.owner for g in groups} == {ads[0].get("Owner"), "alice"}
        report, ex = run_cycle(groups, tmp)
        assert report.plan is not None
        assert report.errors == []
        # alice's plain job was served, at one of the sites
        assert ex.scripts
        check_scripts(ex, tmp, [owner, route, custom, requirements])
        # the site that admits alice only never matches another owner's job, whatever its attributes
        for g in report.plan.groups:
            owner_of = next(x.owner for x in groups if x.group_id == g.group_id)
            if owner_of != "alice":
                assert "alice-only" not in g.matched, (owner_of, g)


def test_huge_values_are_handled_in_bounded_time(tmp_path: Path) -> None:
    big = ("$(touch " + str(SENTINEL) + ")\n'\"`") * ((1 << 20) // 32)
    assert len(big) >= 1 << 20
    ads = [
        job_ad(1, big, big, big, f"MY.CampusFactoryEvil != {classad2.quote(big)}"),
        job_ad(2, "alice", big, "ok", f'TARGET.Memory >= 100 && MY.CampusFactoryRoute =!= "{big[:1000]}"'),
    ]
    t0 = time.monotonic()
    groups = group_job_ads(ads, "schedd")
    report, ex = run_cycle(groups, tmp_path)
    took = time.monotonic() - t0
    assert took < 20, f"{took:.1f} s"
    assert report.plan is not None and report.errors == []
    assert len(ex.scripts) >= 1 and all(len(s) < 20_000 for s in ex.scripts)
    check_scripts(ex, tmp_path, [big])


def test_non_utf8_and_malformed_ads_are_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    texts = [
        '[ClusterId = 1; ProcId = 0; Owner = "bad\\377\\376owner"; RequestCpus = 1; Requirements = true]',
        '[ClusterId = 2; ProcId = 0; Owner = "bob"; CampusFactoryRoute = "\\377"; Requirements = true]',
        '[ClusterId = 3; ProcId = 0; Owner = "bob"; Requirements = "\\300\\301"]',
        '[ClusterId = 4; ProcId = 0; Owner = "carol"; RequestCpus = 1; RequestMemory = 100;'
        " Requirements = TARGET.Memory >= 100]",
    ]
    ads = [classad2.ClassAd(t) for t in texts]
    with caplog.at_level(logging.WARNING, logger="campus_factory.demand.htcondor"):
        groups = group_job_ads(ads, "schedd-x")
    assert [g.owner for g in groups] == ["carol"] and groups[0].jobs == ("4.0",)
    skipped = [r for r in caplog.records if "skipping a malformed job ad" in r.getMessage()]
    assert len(skipped) == 3 and all("schedd-x" in r.getMessage() for r in skipped)
    report, ex = run_cycle(groups, tmp_path)
    assert report.errors == [] and ex.scripts
    check_scripts(ex, tmp_path, [])


@pytest.mark.parametrize("requirements", ["(((", "TARGET.Memory >", 'strcat("a", ', "Memory >= 100 &&& Cpus"])
def test_unparsable_requirements_are_reported_not_fatal(tmp_path: Path, requirements: str) -> None:
    """A group whose Requirements text does not parse (e.g. from a demand snapshot) matches nowhere."""
    from campus_factory.domain import JobGroup

    groups = [
        JobGroup("bad", 5, cpus=1, memory_mb=100, disk_mb=0, owner="eve", requirements=requirements),
        JobGroup("good", 1, cpus=1, memory_mb=100, disk_mb=0, owner="alice"),
    ]
    report, ex = run_cycle(groups, tmp_path)
    assert report.plan is not None and report.errors == []
    bad = next(g for g in report.plan.groups if g.group_id == "bad")
    assert bad.site is None and bad.pilots == 0 and bad.matched == ()
    assert "ad" in bad.reason.lower() or "parse" in bad.reason.lower(), bad.reason
    assert len(ex.scripts) == 1
