"""Reconciliation rules that the loop tests do not reach: stranger grace, black holes, and
one read never being evidence enough (issue 15 item 3)."""

from __future__ import annotations

from campus_factory.ledger import PilotEvent, PilotRecord, PilotState
from campus_factory.loop.reconcile import GONE_AFTER_S, ReadMemory, reconcile, tag_pattern
from campus_factory.providers.base import JobState, JobStatus, Observation

TAG = tag_pattern("cf-f-")


def pilot(pid: str, state: PilotState, job: str | None, started: float | None = None) -> PilotRecord:
    return PilotRecord(
        pid, "f", "s", "aaaaaaaaaa", None, job, state, 1, 100, 0, 0, 3600.0, 0.0, 0.0, started, None, None, None, ""
    )


def test_a_cloud_stranger_is_cancelled_only_after_its_grace() -> None:
    obs = Observation({}, [JobStatus("i-1", JobState.RUNNING, tag="cf-f-0123456789")])
    seen: dict[str, float] = {}
    mem = ReadMemory()
    kw = {"joined": {}, "submission_grace": 60, "stranger_grace": 300, "first_seen": seen, "memory": mem}
    first = reconcile([], obs, TAG, 100.0, **kw)
    assert first.strangers == [] and seen == {"i-1": 100.0}
    later = reconcile([], obs, TAG, 400.0, **kw)
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
    mem = ReadMemory()
    kw = {"joined": {}, "submission_grace": 60, "stranger_grace": 600, "ended": {("aaaaaaaaaa", None): gone}}
    assert reconcile([], obs, TAG, 100.0, memory=mem, **kw).strangers == []  # running: one read is not enough
    assert reconcile([], obs, TAG, 101.0, memory=mem, **kw).strangers == ["i-9"]


def test_a_pending_stranger_is_cancelled_on_the_first_read() -> None:
    obs = Observation({}, [JobStatus("7", JobState.PENDING, tag="cf-f-0123456789")])
    assert reconcile([], obs, TAG, 100.0, joined={}, submission_grace=60).strangers == ["7"]


def test_a_running_stranger_is_never_cancelled_on_one_read() -> None:
    obs = Observation({}, [JobStatus("7", JobState.RUNNING, tag="cf-f-0123456789")])
    mem = ReadMemory()
    assert reconcile([], obs, TAG, 100.0, joined={}, submission_grace=60, memory=mem).strangers == []
    assert reconcile([], Observation({}, []), TAG, 101.0, joined={}, submission_grace=60, memory=mem).strangers == []
    assert reconcile([], obs, TAG, 102.0, joined={}, submission_grace=60, memory=mem).strangers == []  # seen anew
    assert reconcile([], obs, TAG, 103.0, joined={}, submission_grace=60, memory=mem).strangers == ["7"]


def gone(*jobs: str) -> Observation:
    return Observation({j: JobStatus(j, JobState.GONE, reason="not in the queue nor in accounting") for j in jobs})


def test_a_pilot_missing_from_one_read_is_not_lost() -> None:
    live = [
        pilot("p1", PilotState.RUNNING, "1"),
        pilot("p2", PilotState.RUNNING, "2"),
        pilot("p3", PilotState.RUNNING, "3"),
    ]
    mem = ReadMemory()
    kw = {"joined": {}, "submission_grace": 60, "memory": mem}
    first = reconcile(live, gone("1"), TAG, 100.0, **kw)
    assert first.updates == [] and first.failed_read == ""
    # two reads, but too close together (accounting may lag): still not lost
    assert reconcile(live, gone("1"), TAG, 101.0, **kw).updates == []
    later = reconcile(live, gone("1"), TAG, 100.0 + GONE_AFTER_S, **kw)
    assert [(u.pilot_id, u.event) for u in later.updates] == [("p1", PilotEvent.GONE)]


def test_a_pilot_seen_again_starts_its_count_anew() -> None:
    live = [
        pilot("p1", PilotState.RUNNING, "1"),
        pilot("p2", PilotState.RUNNING, "2"),
        pilot("p3", PilotState.RUNNING, "3"),
    ]
    mem = ReadMemory()
    kw = {"joined": {}, "submission_grace": 60, "memory": mem}
    reconcile(live, gone("1"), TAG, 100.0, **kw)
    back = Observation({"1": JobStatus("1", JobState.RUNNING)})
    assert reconcile(live, back, TAG, 110.0, **kw).updates == [] and mem.missing == {}
    assert reconcile(live, gone("1"), TAG, 100.0 + GONE_AFTER_S, **kw).updates == []


def test_accounting_is_evidence_at_once() -> None:
    live = [pilot("p1", PilotState.RUNNING, "1")]
    obs = Observation({"1": JobStatus("1", JobState.COMPLETED, exit_code=0, from_accounting=True)})
    assert [u.event for u in reconcile(live, obs, TAG, 100.0, joined={}, submission_grace=60).updates] == [
        PilotEvent.COMPLETED
    ]


def test_a_read_lacking_most_live_pilots_is_a_failed_read() -> None:
    live = [pilot(f"p{i}", PilotState.RUNNING, str(i)) for i in range(4)]
    mem = ReadMemory()
    kw = {"joined": {}, "submission_grace": 60, "memory": mem}
    tagged = [JobStatus("9", JobState.PENDING, tag="cf-f-0123456789")]
    obs = Observation({**gone("0", "1", "2").statuses, "3": JobStatus("3", JobState.RUNNING)}, tagged)
    first = reconcile(live, obs, TAG, 100.0, **kw)
    assert "3 of 4 live pilots" in first.failed_read
    assert first.updates == [] and first.strangers == []  # nothing of a failed read is used
    # the same answer again, long enough after: now it is evidence
    again = reconcile(live, obs, TAG, 100.0 + GONE_AFTER_S, **kw)
    assert again.failed_read == ""
    assert sorted(u.pilot_id for u in again.updates if u.event is PilotEvent.GONE) == ["p0", "p1", "p2"]
