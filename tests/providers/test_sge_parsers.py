"""SGE parsers and state table against outputs captured from Son of Grid Engine 8.1.9 (see
tests/providers/data/README.md), and the provider's declarations."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.domain import PilotRequest
from campus_factory.errors import ConfigError
from campus_factory.providers.base import JobState, Submission, translate_state
from campus_factory.providers.sge import SGE_STATES, SgeProvider, parse_qacct, parse_qstat_xml, sge_key
from campus_factory.transport.executor import LocalExecutor

DATA = Path(__file__).parent / "data"


def test_qstat_xml_expands_every_task() -> None:
    jobs = {s.job_id: s for s in parse_qstat_xml((DATA / "sge_qstat_gd.xml").read_text())}
    assert set(jobs) == {"4.1", "4.2", "5.1", "5.2", "5.3", "7"}
    assert (jobs["4.2"].state, jobs["4.2"].array_index, jobs["4.2"].tag) == (
        JobState.RUNNING,
        1,
        "cf-campus-0a1b2c3d4e",
    )
    assert jobs["5.3"].state is JobState.PENDING and jobs["5.3"].native_state == "hqw"
    assert jobs["7"].array_index is None and jobs["7"].tag == "other-job"


def test_pending_ranges_without_g_d() -> None:
    xml = (
        "<?xml version='1.0'?><job_info><queue_info/><job_info><job_list state='pending'>"
        "<JB_job_number>9</JB_job_number><JB_name>cf-x-0123456789</JB_name><state>qw</state>"
        "<tasks>2-6:2,9</tasks></job_list></job_info></job_info>"
    )
    assert [(s.job_id, s.array_index) for s in parse_qstat_xml(xml)] == [
        ("9.2", 1),
        ("9.4", 3),
        ("9.6", 5),
        ("9.9", 8),
    ]
    assert parse_qstat_xml("") == []
    with pytest.raises(ValueError):
        parse_qstat_xml("<job_info>")


def test_state_letters_keep_their_case(caplog: pytest.LogCaptureFixture) -> None:
    def st(native: str) -> JobState:
        return translate_state(sge_key(native), SGE_STATES, "sge")

    assert st("r") is JobState.RUNNING and st("Rr") is JobState.RUNNING  # restarted, running
    assert st("t") is JobState.RUNNING and st("T") is JobState.RUNNING
    assert st("qw") is JobState.PENDING and st("hqw") is JobState.PENDING
    assert st("Eqw") is JobState.PENDING  # error state: waits for an admin
    assert st("dr") is JobState.CANCELLED
    with caplog.at_level(logging.WARNING):
        assert st("zz") is JobState.UNKNOWN
    assert "unknown job state" in caplog.text


def test_qacct_captured() -> None:
    jobs = {s.job_id: s for s in parse_qacct((DATA / "sge_qacct.txt").read_text())}
    assert (jobs["4.2"].state, jobs["4.2"].exit_code, jobs["4.2"].array_index) == (JobState.CANCELLED, 137, 1)
    assert (jobs["6"].state, jobs["6"].exit_code) == (JobState.COMPLETED, 0)
    assert jobs["7"].state is JobState.CANCELLED and jobs["7"].from_accounting
    assert jobs["8"].state is JobState.COMPLETED and "h_rt" in jobs["8"].reason  # walltime reached


def test_qacct_failures() -> None:
    block = "==============================================================\n"
    text = (
        block + "jobname cf-x-0123456789\njobnumber 12\ntaskid undefined\nfailed 26 : opening input/output file\n"
        "exit_status 0\n" + block + "jobname cf-x-0123456789\njobnumber 13\ntaskid undefined\nfailed 0\nexit_status 3\n"
    )
    jobs = {s.job_id: s for s in parse_qacct(text)}
    assert jobs["12"].state is JobState.FAILED and jobs["12"].reason.startswith("failed 26")
    assert (jobs["13"].state, jobs["13"].exit_code) == (JobState.FAILED, 3)


def provider(**batch: object) -> SgeProvider:
    cfg = parse_config(
        {
            "sites": [
                {
                    "name": "g",
                    "provider": "sge",
                    "slot": {"cpus": 2, "memory_mb": 3000},
                    "walltime": "2h",
                    "batch": {"work_dir": "/tmp/cf", **batch},
                }
            ]
        }
    )
    return SgeProvider(cfg.sites[0], cfg.pilot, LocalExecutor(), "campus")


def test_directives_and_ids() -> None:
    p = provider(sge_memory_complex="h_vmem", partition="all.q")
    pilots = tuple(PilotRequest(f"p-{i}", 2, 3000, 0, 0, 7200.0) for i in range(3))
    d = p.directives(Submission("0123456789", "cf-campus-0123456789", pilots))
    assert d[:5] == ["-N cf-campus-0123456789", "-o /tmp/cf/", "-j y", "-S /bin/bash", "-l h_rt=02:00:00"]
    assert "-pe smp 2" in d and "-l h_vmem=1500M" in d and "-t 1-3" in d and "-q all.q" in d
    sub = Submission("0123456789", "cf-campus-0123456789", pilots)
    assert p.parse_submit("11.1-3:1\n", sub) == ["11.1", "11.2", "11.3"]
    assert p.parse_submit("12\n", Submission("x", "t", pilots[:1])) == ["12"]
    assert p.accounting_argvs(["11.1", "11.3", "12"]) == [["qacct", "-j", "11"], ["qacct", "-j", "12"]]
    assert p.cancel_argvs(["11.1", "12"], graceful=True) == [["qdel", "11.1,12"]]
    assert (p.array_index_var, p.array_base) == ("SGE_TASK_ID", 1)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="qos"):
        provider(qos="fast")
