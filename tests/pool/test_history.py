"""Finished jobs from a schedd's history ads, parsed at the edge (pool/htcondor.py, issue 18)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from campus_factory.pool.htcondor import finished_run, pilot_of_host


def test_the_pilot_is_read_from_the_slot_name() -> None:
    assert pilot_of_host("slot1_1@glidein-cf-ab12@node3.example.edu") == "cf-ab12"
    assert pilot_of_host("slot1_1@glidein-cf-ab12") == "cf-ab12"
    assert pilot_of_host("slot1@node3.example.edu") is None
    assert pilot_of_host("glidein-x") is None  # the slot part comes first
    assert pilot_of_host("slot1@glidein-") is None
    assert pilot_of_host(None) is None


def test_a_completed_job_is_one_finished_run() -> None:
    ad = {
        "GlobalJobId": "sched#7.0#1",
        "LastRemoteHost": "slot1_2@glidein-p9@n1",
        "JobCurrentStartDate": 1000,
        "CompletionDate": 1046,
        "JobStatus": 4,
        "Owner": "alice",
        "CpusProvisioned": 2,
        "RequestCpus": 1,
        "CampusFactoryRoute": "no-cloud",
    }
    r = finished_run(ad)
    assert r is not None and r.ended_at == 1046.0
    assert (r.job.pilot_id, r.job.job_id, r.job.started_at, r.job.cpus, r.job.owner, r.job.route) == (
        "p9",
        "sched#7.0#1",
        1000.0,
        2,
        "alice",
        "no-cloud",
    )
    assert finished_run({**ad, "JobStatus": 2}) is None  # still running: not finished
    assert finished_run({**ad, "LastRemoteHost": "slot1@worker"}) is None  # not on a glidein
    assert finished_run({**ad, "CompletionDate": 0, "EnteredCurrentStatus": 900}) is None  # ended before start


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            k: values
            for k in (
                "GlobalJobId",
                "LastRemoteHost",
                "JobCurrentStartDate",
                "CompletionDate",
                "EnteredCurrentStatus",
                "LastVacateTime",
                "JobStatus",
                "Owner",
                "CpusProvisioned",
                "RequestCpus",
                "CampusFactoryRoute",
            )
        },
    )
)
def test_any_history_ad_is_a_bounded_run_or_nothing(ad: dict[str, object]) -> None:
    r = finished_run(ad)
    if r is None:
        return
    j = r.job
    assert isinstance(j.job_id, str) and j.pilot_id
    assert 0 < j.started_at <= r.ended_at <= j.started_at + 366 * 86400
    assert r.ended_at < float("inf")
    assert 1 <= j.cpus <= 100_000
    assert isinstance(j.owner, str) and isinstance(j.route, str) and j.route
