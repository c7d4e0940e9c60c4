"""Batch-system output is a trust boundary (issue 15, items 3, 5 and 10): property tests feed
every parser (squeue, sacct, qstat -xml, qacct, PBS qstat -f and -F json, LSF bjobs) any text,
numbers and nesting. Each gives job statuses with checked ids or raises ValueError, which the
provider turns into a ProviderError of that site; never another exception, and in bounded time
and memory (SGE task ranges are counted before they are expanded).
"""

from __future__ import annotations

import asyncio
import json
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.providers.test_batch_boundaries import KINDS, Replay, make

from campus_factory.errors import ProviderError, SubmitError
from campus_factory.providers.base import JobState, JobStatus
from campus_factory.providers.lsf import parse_bjobs
from campus_factory.providers.pbs import parse_qstat_full, parse_qstat_json
from campus_factory.providers.sge import parse_qacct, parse_qstat_xml
from campus_factory.providers.slurm import parse_sacct, parse_squeue

WORDS = st.sampled_from(
    ["RUNNING", "PENDING", "COMPLETED", "r", "qw", "Eqw", "R", "Q", "C", "RUN", "PEND", "DONE", "EXIT", "N/A",
     "None", "(null)", "-", "", "0", "-1", "1-2000000000:1", "7.1-500000000:1", "1,4-6:1", "0:15", "9" * 40,
     "--user=root", "12_3", "5[2]", "cf-campus-0123456789", "\x00", "\ud800", "<", "&amp;", "]]>"]
)  # fmt: skip
FIELD = st.one_of(WORDS, st.text(max_size=12), st.integers(-(2**70), 2**70).map(str))


def lines(sep: str, n: int) -> st.SearchStrategy[str]:
    def joined(fields: list[str]) -> str:
        return sep.join(f.replace("\n", " ") for f in fields)

    exact = st.lists(FIELD, min_size=n, max_size=n).map(joined)  # the right shape, any values
    line = st.lists(FIELD, min_size=1, max_size=n + 1).map(joined)
    return st.lists(st.one_of(exact, exact, line, st.text(max_size=40)), max_size=8).map("\n".join)


def checked(statuses: list[JobStatus]) -> None:
    for s in statuses:
        assert isinstance(s, JobStatus) and isinstance(s.state, JobState)
        assert s.array_index is None or abs(s.array_index) < 10**10
        assert s.exit_code is None or abs(s.exit_code) < 10**10


def value_or_value_error(parse, text: str) -> None:
    try:
        out = parse(text)
    except ValueError:
        event("refused: ValueError")
        return
    event("read: jobs" if out else "read: no job")
    checked(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(lines("|", 5), st.text(max_size=200)))
def test_squeue_listing(text: str) -> None:
    value_or_value_error(parse_squeue, text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(lines("|", 4), st.text(max_size=200)))
def test_sacct_listing(text: str) -> None:
    value_or_value_error(parse_sacct, text)


JOB_XML = st.tuples(FIELD, FIELD, FIELD, FIELD).map(
    lambda t: (
        "<job_list>"
        + "".join(
            f"<{k}>{escape(v)}</{k}>" for k, v in zip(("JB_job_number", "JB_name", "state", "tasks"), t, strict=True)
        )
        + "</job_list>"
    )
)
QSTAT_XML = st.lists(JOB_XML, max_size=5).map(lambda js: f"<?xml version='1.0'?><job_info>{''.join(js)}</job_info>")
NESTED_XML = st.integers(1, 5000).map(lambda n: "<a>" * n + "</a>" * n)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(QSTAT_XML, NESTED_XML, st.text(max_size=200)))
def test_qstat_xml_listing(text: str) -> None:
    value_or_value_error(parse_qstat_xml, text)


QACCT_LINE = st.tuples(st.sampled_from(["jobnumber", "taskid", "failed", "exit_status", "jobname", "x"]), FIELD)
QACCT = st.lists(st.lists(QACCT_LINE, max_size=6), max_size=4).map(
    lambda blocks: "\n".join("=" * 62 + "\n" + "\n".join(f"{k} {v}".strip() for k, v in b) for b in blocks)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(QACCT, st.text(max_size=200)))
def test_qacct_records(text: str) -> None:
    value_or_value_error(parse_qacct, text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | FIELD,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(FIELD, c, max_size=4),
    max_leaves=20,
)
PBS_JSON = st.one_of(
    JSON.map(json.dumps),
    st.dictionaries(
        FIELD, st.dictionaries(st.sampled_from(["job_state", "Job_Name", "exit_status", "array"]), JSON)
    ).map(lambda jobs: json.dumps({"Jobs": jobs})),
    st.integers(1, 100_000).map(lambda n: '{"Jobs": ' + "[" * n + "]" * n + "}"),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=PBS_JSON)
def test_pbs_json_listing(text: str) -> None:
    value_or_value_error(parse_qstat_json, text)


PBS_ATTR = st.tuples(st.one_of(st.sampled_from(["job_state", "Job_Name", "exit_status", "array_index"]), FIELD), FIELD)
PBS_TEXT = st.lists(
    st.one_of(FIELD.map(lambda f: f"Job Id: {f}"), PBS_ATTR.map(lambda kv: f"    {kv[0]} = {kv[1]}")),
    max_size=8,
).map("\n".join)
PBS_JOBS = st.lists(st.tuples(FIELD, st.lists(PBS_ATTR, max_size=4)), max_size=4).map(
    lambda jobs: "\n".join(f"Job Id: {j}\n" + "\n".join(f"    {k} = {v}" for k, v in a) for j, a in jobs)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(PBS_JOBS, PBS_TEXT, st.text(max_size=200)))
def test_pbs_text_listing(text: str) -> None:
    value_or_value_error(parse_qstat_full, text)


LSF_JSON = st.one_of(
    JSON.map(json.dumps), st.lists(st.dictionaries(FIELD, FIELD)).map(lambda r: json.dumps({"RECORDS": r}))
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(lines("|", 5), LSF_JSON, st.text(max_size=200)))
def test_lsf_listing(text: str) -> None:
    value_or_value_error(parse_bjobs, text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), out=st.one_of(st.text(max_size=300), PBS_JSON, QSTAT_XML, lines("|", 5)))
def test_any_queue_answer_is_an_observation_or_a_provider_error(kind: str, out: str) -> None:
    """Through the provider: every command answers ``out`` (queue listing and accounting alike)."""
    name = {"slurm": "squeue", "sge": "qstat", "lsf": "bjobs"}.get(kind, "qstat")
    answers = {n: (0, out, "") for n in (name, "sacct", "qacct", "tracejob")}
    p = make(kind, Replay(answers))
    try:
        obs = asyncio.run(p.observe(["1", "2"], "cf-campus-"))
    except ProviderError:
        event("refused: ProviderError")
        return
    event("read: an observation")
    assert set(obs.statuses) == {"1", "2"}
    assert all(p.valid_id(s.job_id) for s in obs.tagged)


# -- the examples the review found (each failed before) -----------------------------------------
def qstat_xml(*jobs: tuple[str, str, str]) -> str:
    body = "".join(
        f"<job_list><JB_job_number>{n}</JB_job_number><JB_name>{t}</JB_name><state>qw</state><tasks>{r}</tasks>"
        "</job_list>"
        for n, t, r in jobs
    )
    return f"<?xml version='1.0'?><job_info><job_info>{body}</job_info></job_info>"


@pytest.mark.parametrize("tasks", ["1-2000000000:1", "1-200001:1", "1-100000:1,1-100000:1"])
def test_a_huge_sge_task_range_in_qstat_is_skipped_not_expanded(tasks: str) -> None:
    out = parse_qstat_xml(qstat_xml(("8", "someone-else", tasks), ("7", "cf-campus-0123456789", "1-3:1")))
    assert [s.job_id for s in out] == ["7.1", "7.2", "7.3"]


@pytest.mark.parametrize("answer", ["7.1-500000000:1", "7.1-5:1", "7.1-3:0"])
def test_a_qsub_answer_with_more_tasks_than_pilots_is_refused(answer: str) -> None:
    from tests.providers.test_pbs_parsers import submission

    p = make("sge", Replay())
    with pytest.raises(ValueError, match="task"):
        p.parse_submit(answer + "\n", submission(3))
    assert p.parse_submit("7.1-3:1\n", submission(3)) == ["7.1", "7.2", "7.3"]
    p = make("sge", Replay({"qsub": (0, answer + "\n", "")}))
    with pytest.raises(SubmitError):
        asyncio.run(p.submit(submission(3)))


def test_a_qacct_failed_line_without_value_is_a_failure() -> None:
    text = "=" * 62 + "\njobnumber    7\ntaskid       undefined\nfailed\nexit_status  0\njobname cf-x\n"
    (st_,) = parse_qacct(text)
    assert (st_.job_id, st_.state) == ("7", JobState.FAILED)


@pytest.mark.parametrize(
    "text", ['{"Jobs": [1, 2]}', '{"Jobs": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"Jobs": "x"}']
)
def test_a_pbs_json_listing_that_is_no_listing_is_a_failed_read(text: str) -> None:
    with pytest.raises(ValueError):
        parse_qstat_json(text)
    p = make("pbs:pbspro", Replay({"qstat": (0, text, "")}))
    with pytest.raises(ProviderError, match="cannot read"):
        asyncio.run(p.observe(["1"], "cf-campus-"))
