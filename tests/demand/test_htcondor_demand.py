"""Demand read from a real schedd (marker `htcondor`)."""

from __future__ import annotations

import pytest

from campus_factory.config import PoolOptions
from campus_factory.demand.htcondor import HTCondorDemand

pytestmark = pytest.mark.htcondor

SUBMIT = """
executable = /bin/sleep
arguments = 600
request_cpus = {cpus}
request_memory = {mem}
requirements = (TARGET.CampusFactorySite =?= "nowhere-{tag}")
+CampusFactoryRoute = "{route}"
queue {n}
"""


def test_idle_jobs_are_grouped_per_shape(condor_pool, monkeypatch) -> None:
    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    tag = "demand"
    for cpus, mem, n, route in ((1, 1000, 3, "transparent"), (2, 4000, 2, "cloud-only")):
        sub = condor_pool.submit_dir / f"d{cpus}.sub"
        sub.write_text(SUBMIT.format(cpus=cpus, mem=mem, n=n, tag=tag, route=route))
        sub.chmod(0o644)
        condor_pool.run("condor_submit", str(sub), user="nobody")
    try:
        demand = HTCondorDemand(PoolOptions(collector=condor_pool.collector, job_constraint='Owner == "nobody"'))
        groups = {(g.cpus, g.memory_mb): g for g in demand.idle_groups()}
        assert groups[(1, 1000)].count == 3 and groups[(2, 4000)].count == 2
        g2 = groups[(2, 4000)]
        assert g2.owner == "nobody" and "nowhere-demand" in g2.requirements
        assert g2.attributes.get("CampusFactoryRoute") == '"cloud-only"'
        assert len(g2.jobs) == 2 and all("." in j for j in g2.jobs)
        # a schedd filter naming no existing schedd gives no demand
        none = HTCondorDemand(PoolOptions(collector=condor_pool.collector, schedds=("no-such-schedd",)))
        assert none.idle_groups() == []
    finally:
        condor_pool.run("condor_rm", "-all", check=False)


def test_a_schedd_that_stops_answering_keeps_its_last_idle_jobs_for_a_while(condor_pool, monkeypatch) -> None:
    import htcondor2

    from campus_factory.demand.htcondor import STALE_S

    monkeypatch.setenv("CONDOR_CONFIG", str(condor_pool.config_file))
    sub = condor_pool.submit_dir / "stale.sub"
    sub.write_text(SUBMIT.format(cpus=1, mem=100, n=2, tag="stale", route="transparent"))
    sub.chmod(0o644)
    condor_pool.run("condor_submit", str(sub), user="nobody")
    t = [0.0]
    try:
        demand = HTCondorDemand(
            PoolOptions(collector=condor_pool.collector, job_constraint='Owner == "nobody"'), clock=lambda: t[0]
        )
        (g,) = demand.idle_groups()
        assert g.count == 2

        def timed_out(self, *a, **k):
            raise htcondor2.HTCondorException("Failed to fetch ads from schedd (timed out)")

        with monkeypatch.context() as m:
            m.setattr(htcondor2.Schedd, "query", timed_out)
            t[0] = STALE_S - 1  # a failed read is not an empty queue
            assert [x.count for x in demand.idle_groups()] == [2]
            t[0] = STALE_S + 1  # until its last good read is too old
            assert demand.idle_groups() == []
        assert [x.count for x in demand.idle_groups()] == [2]  # it answers again
    finally:
        condor_pool.run("condor_rm", "-all", check=False)
