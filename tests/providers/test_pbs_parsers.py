"""PBS parsers, state table and script directives against documented (and captured) outputs.

See tests/providers/data/README.md for where each sample comes from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from campus_factory.config import parse_config
from campus_factory.domain import PilotRequest
from campus_factory.errors import ConfigError, UnsafeValueError
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.pbs import (
    PBS_STATES,
    SLURM_WRAPPER_STATES,
    PbsProProvider,
    SlurmPbsProvider,
    TorqueProvider,
    parse_qstat_full,
    parse_qstat_json,
    parse_tracejob,
    pbs_provider,
)
from campus_factory.transport.executor import CommandResult, LocalExecutor

DATA = Path(__file__).parent / "data"


def by_id(statuses):
    return {s.job_id: s for s in statuses}


def test_openpbs_json_listing() -> None:
    jobs = by_id(parse_qstat_json((DATA / "pbspro_qstat_f.json").read_text()))
    assert "1002[]" not in jobs, "an array's parent is not a pilot"
    assert jobs["1001"].state is JobState.RUNNING and jobs["1001"].tag == "cf-campus-0a1b2c3d4e"
    assert jobs["1001"].array_index is None and jobs["1001"].reason.startswith("Job run at")
    assert (jobs["1002[0]"].state, jobs["1002[0]"].exit_code) == (JobState.COMPLETED, 0)
    assert (jobs["1002[1]"].state, jobs["1002[1]"].array_index) == (JobState.RUNNING, 1)
    assert (jobs["1002[2]"].state, jobs["1002[2]"].array_index) == (JobState.PENDING, 2)
    assert jobs["1002[2]"].tag == "cf-campus-1a2b3c4d5e"
    assert jobs["1003"].state is JobState.PENDING  # held


def test_unknown_state_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        jobs = by_id(parse_qstat_json((DATA / "pbspro_qstat_f.json").read_text()))
    assert jobs["1004"].state is JobState.UNKNOWN and jobs["1004"].native_state == "Z"
    assert any("unknown job state 'Z'" in r.getMessage() for r in caplog.records)


def test_openpbs_history_refines_by_exit_status() -> None:
    jobs = by_id(parse_qstat_json((DATA / "pbspro_qstat_x_f.json").read_text(), accounting=True))
    assert jobs["1001"].state is JobState.COMPLETED and jobs["1001"].from_accounting
    assert (jobs["1005"].state, jobs["1005"].exit_code) == (JobState.CANCELLED, 271)  # qdel
    assert jobs["1006"].state is JobState.COMPLETED  # walltime reached: the pilot lived its life
    assert jobs["1007"].state is JobState.FAILED


def test_pbspro_text_listing_joins_wrapped_values() -> None:
    jobs = by_id(parse_qstat_full((DATA / "pbspro_qstat_f.txt").read_text()))
    assert set(jobs) == {"1001", "1002[1]", "1002[2]"}
    assert jobs["1001"].reason == "Job run at Tue Mar 02 at 10:15 on (node01:ncpus=4:mem=8192000kb)"
    assert jobs["1002[2]"].reason.endswith("(R: 4 A: 0 T: 8)")
    assert (jobs["1002[1]"].state, jobs["1002[1]"].array_index) == (JobState.RUNNING, 1)


def test_torque_listing() -> None:
    jobs = by_id(parse_qstat_full((DATA / "torque_qstat_f.txt").read_text()))
    assert (jobs["2045"].state, jobs["2045"].exit_code) == (JobState.COMPLETED, 0)
    assert jobs["2046[0]"].tag == "cf-campus-4d4d4d4d4d", "Torque's name-index suffix is dropped"
    assert (jobs["2046[1]"].state, jobs["2046[1]"].array_index) == (JobState.PENDING, 1)
    assert jobs["2047"].state is JobState.CANCELLED  # exit_status 271: killed by qdel's TERM
    assert jobs["2048"].state is JobState.PENDING and jobs["2048"].tag == "STDIN"


def test_torque_tracejob() -> None:
    jobs = by_id(parse_tracejob((DATA / "torque_tracejob.txt").read_text()))
    assert set(jobs) == {"2045", "2049"}, "a job with no end recorded is not reported"
    assert (jobs["2045"].state, jobs["2045"].exit_code, jobs["2045"].tag) == (
        JobState.COMPLETED,
        0,
        "cf-campus-5f6e7d8c9b",
    )
    assert jobs["2049"].state is JobState.CANCELLED and jobs["2049"].from_accounting


def test_slurm_wrapper_listing_captured() -> None:
    jobs = by_id(parse_qstat_full((DATA / "slurm_wrapper_qstat_f.txt").read_text(), SLURM_WRAPPER_STATES))
    assert jobs["5"].state is JobState.RUNNING and jobs["5"].tag == "cf-campus-abcdef0123"
    assert jobs["6"].state is JobState.COMPLETED  # the wrapper shows no exit status


def test_state_tables_cover_the_documented_letters() -> None:
    assert set("QHWTMRESUBCFX") == set(PBS_STATES)
    assert "U" not in SLURM_WRAPPER_STATES  # the wrappers' "U" means "a Slurm state I don't know"


# -- the provider's declarations ---------------------------------------------------------------
def site_config(flavor: str, **batch: object):
    cfg = parse_config(
        {
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "p",
                    "provider": "pbs",
                    "slot": {"cpus": 2, "memory_mb": 1000},
                    "walltime": "1h30m",
                    "batch": {"pbs_flavor": flavor, "work_dir": "/tmp/cf", **batch},
                }
            ],
        }
    )
    return cfg, cfg.sites[0]


def submission(n: int, tag: str = "cf-campus-0123456789") -> Submission:
    pilots = tuple(PilotRequest(f"p-{i}", 2, 1000, 0, 0, 5400.0) for i in range(n))
    return Submission("0123456789", tag, pilots)


def test_pbspro_directives_and_ids() -> None:
    cfg, site = site_config("pbspro", partition="workq", account="htc", bin_dir="/opt/pbs/bin")
    p = pbs_provider(site, cfg.pilot, LocalExecutor(), "campus")
    assert isinstance(p, PbsProProvider)
    d = p.directives(submission(3))
    assert "-l select=1:ncpus=2:mem=1000mb" in d and "-l walltime=01:30:00" in d
    assert "-J 0-2" in d and "-q workq" in d and "-A htc" in d and "-N cf-campus-0123456789" in d
    assert p.submit_argv(submission(3)) == ["/opt/pbs/bin/qsub"]
    assert p.parse_submit("1002[].pbsserver\n", submission(3)) == ["1002[0]", "1002[1]", "1002[2]"]
    assert p.parse_submit("1003.pbsserver.example.org\n", submission(1)) == ["1003"]
    assert p.queue_argv() == ["/opt/pbs/bin/qstat", "-f", "-F", "json", "-t"]
    assert p.accounting_argvs(["1", "2[1]"]) == [
        ["/opt/pbs/bin/qstat", "-x", "-f", "-F", "json", "1"],
        ["/opt/pbs/bin/qstat", "-x", "-f", "-F", "json", "2[1]"],
    ]
    assert p.cancel_argvs(["1"], graceful=True)[0] == ["/opt/pbs/bin/qsig", "-s", "TERM", "1"]
    assert p.array_index_var == "PBS_ARRAY_INDEX"


def test_torque_and_slurm_dialects() -> None:
    cfg, site = site_config("torque")
    t = pbs_provider(site, cfg.pilot, LocalExecutor(), "campus")
    assert isinstance(t, TorqueProvider) and t.array_index_var == "PBS_ARRAYID"
    d = t.directives(submission(2))
    assert "-l nodes=1:ppn=2" in d and "-l mem=1000mb" in d and "-t 0-1" in d
    assert t.accounting_argvs(["7"]) == [["tracejob", "-q", "-n", "3", "7"]]
    cfg, site = site_config("slurm", json_output=True)
    s = pbs_provider(site, cfg.pilot, LocalExecutor(), "campus")
    assert isinstance(s, SlurmPbsProvider)
    assert not any(x.startswith("-t ") for x in s.directives(submission(1)))
    assert s.queue_argv() == ["qstat", "-f"] and s.accounting_argvs(["5"]) == []
    assert s.script_path(submission(1)) == "/tmp/cf/cf-campus-0123456789-p-0.sh"
    assert s.queue_empty(CommandResult(("qstat",), 153, "", ""))
    assert not s.queue_empty(CommandResult(("qstat",), 1, "", "slurm_load_jobs error"))


def test_unsafe_values_are_rejected() -> None:
    cfg, site = site_config("slurm", work_dir="/tmp/a b")
    s = pbs_provider(site, cfg.pilot, LocalExecutor(), "campus")
    with pytest.raises(UnsafeValueError):
        s.submit_argv(submission(1))
    cfg, site = site_config("pbspro", partition="work;q")
    with pytest.raises(UnsafeValueError):
        pbs_provider(site, cfg.pilot, LocalExecutor(), "campus").directives(submission(1))
    with pytest.raises(ConfigError, match="qos"):
        cfg, site = site_config("pbspro", qos="low")
        pbs_provider(site, cfg.pilot, LocalExecutor(), "campus")
