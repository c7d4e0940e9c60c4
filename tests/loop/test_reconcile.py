"""Reconciliation rules that the loop tests do not reach: stranger grace and black holes."""

from __future__ import annotations

from campus_factory.ledger import PilotEvent, PilotRecord, PilotState
from campus_factory.loop.reconcile import reconcile, tag_pattern
from campus_factory.providers.base import JobState, JobStatus, Observation

TAG = tag_pattern("cf-f-")


def pilot(pid: str, state: PilotState, job: str | None, started: float | None = None) -> PilotRecord:
    return PilotRecord(
        pid, "f", "s", "aaaaaaaaaa", None, job, state, 1, 100, 0, 0, 3600.0, 0.0, 0.0, started, None, None, None, ""
    )


def test_a_cloud_stranger_is_cancelled_only_after_its_grace() -> None:
    obs = Observation({}, [JobStatus("i-1", JobState.RUNNING, tag="cf-f-0123456789")])
    seen: dict[str, float] = {}
    first = reconcile([], obs, TAG, 100.0, joined={}, submission_grace=60, stranger_grace=300, first_seen=seen)
    assert first.strangers == [] and seen == {"i-1": 100.0}
    later = reconcile([], obs, TAG, 400.0, joined={}, submission_grace=60, stranger_grace=300, first_seen=seen)
    assert later.strangers == ["i-1"]


def test_running_pilot_that_never_joins_is_a_black_hole() -> None:
    p = pilot("p1", PilotState.RUNNING, "i-1", started=0.0)
    obs = Observation({"i-1": JobStatus("i-1", JobState.RUNNING)}, [])
    early = reconcile([p], obs, TAG, 100.0, joined={}, submission_grace=60, join_timeout=600)
    assert early.black_holes == []
    late = reconcile([p], obs, TAG, 700.0, joined={}, submission_grace=60, join_timeout=600)
    assert [b.pilot_id for b in late.black_holes] == ["p1"]
    joined = reconcile([p], obs, TAG, 700.0, joined={"p1": "slot1@glidein-p1"}, submission_grace=60, join_timeout=600)
    # running seen running again changes nothing: only the join is written
    assert joined.black_holes == [] and [u.event for u in joined.updates] == [PilotEvent.JOINED]


def test_a_job_of_a_pilot_already_ended_is_cancelled_at_once() -> None:
    gone = pilot("p1", PilotState.FAILED, None)  # its submission timed out, but went through
    obs = Observation({}, [JobStatus("i-9", JobState.RUNNING, tag="cf-f-aaaaaaaaaa")])
    out = reconcile(
        [], obs, TAG, 100.0, joined={}, submission_grace=60, stranger_grace=600, ended={("aaaaaaaaaa", None): gone}
    )
    assert out.strangers == ["i-9"]
