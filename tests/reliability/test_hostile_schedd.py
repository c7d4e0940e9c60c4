"""Hostile jobs in a real schedd (marker `htcondor`): a job's owner sets any attribute with
condor_qedit, a non-UTF-8 string or a string Requirements included. Demand still reads every other
job of the schedd, skips the malformed one with a warning, and a string Requirements cannot make a
job look like another owner's to the planner."""

from __future__ import annotations

import logging
import uuid

import pytest

from campus_factory.config import PoolOptions, parse_config
from campus_factory.demand.htcondor import HTCondorDemand
from campus_factory.planner import plan
from campus_factory.planner.inputs import site_specs

pytestmark = pytest.mark.htcondor

SUBMIT = """
executable = /bin/sleep
arguments = 600
request_memory = 100
requirements = (TARGET.CampusFactorySite =?= "nowhere-{tag}") || (TARGET.Memory >= 100)
+CampusFactoryTest = "{tag}"
queue 4
"""
EDITS = {
    # raw bytes 0xff 0xfe in the command line (os.fsencode: surrogateescape); qedit stores them as they are
    1: ("Requirements", '"\udcff\udcfe not utf-8"'),
    2: ("CampusFactoryRoute", '"$(touch /tmp/cf-qedit-pwned)\\n`id`; \\"quoted\\" \' \\\\"'),
    3: ("Requirements", '"true; Owner = \\"alice\\""'),
}


def test_a_hostile_job_in_a_real_schedd_is_skipped_alone(condor_pool, monkeypatch, caplog) -> None:
    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    tag = "hs" + uuid.uuid4().hex[:6]
    sub = condor_pool.submit_dir / f"{tag}.sub"
    sub.write_text(SUBMIT.format(tag=tag))
    sub.chmod(0o644)
    cluster = condor_pool.run("condor_submit", "-terse", str(sub), user="nobody").split(".")[0].strip()
    try:
        for proc, (attr, value) in EDITS.items():
            condor_pool.run("condor_qedit", f"{cluster}.{proc}", attr, value, user="nobody")
        demand = HTCondorDemand(
            PoolOptions(collector=condor_pool.collector, job_constraint=f'CampusFactoryTest == "{tag}"')
        )
        with caplog.at_level(logging.WARNING, logger="campus_factory.demand.htcondor"):
            groups = demand.idle_groups()
        jobs = sorted(j for g in groups for j in g.jobs)
        assert jobs == [f"{cluster}.0", f"{cluster}.2", f"{cluster}.3"], (jobs, caplog.text)
        assert "skipping a malformed job ad" in caplog.text
        assert all(g.owner == "nobody" for g in groups)
        routed = next(g for g in groups if f"{cluster}.2" in g.jobs)
        assert routed.attributes["CampusFactoryRoute"].startswith('"$(touch')  # kept as ClassAd text
        stringy = next(g for g in groups if f"{cluster}.3" in g.jobs)
        assert stringy.requirements.startswith('"') and stringy.requirements.endswith('"')

        cfg = parse_config(
            {
                "sites": [
                    {"name": "alice-only", "provider": "fake", "allowed_owners": ["alice"]},
                    {"name": "open", "provider": "fake"},
                ]
            }
        )
        decisions = {g.group_id: g for g in plan(groups, site_specs(cfg.sites), [], 1000.0).groups}
        # a string Requirements is not true: the job matches no site, and never alice's
        assert decisions[stringy.group_id].matched == ()
        assert all("alice-only" not in d.matched for d in decisions.values())
        assert decisions[routed.group_id].matched == ("open",)
    finally:
        condor_pool.run("condor_rm", cluster, check=False)
