"""Tests of the Slurm provider: its parsers, its declarations, and the batch base through it.

Commands never run: a recording fake executor answers each command from a script.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from campus_factory.config import BatchOptions, PilotOptions, SiteConfig
from campus_factory.domain import PilotRequest
from campus_factory.errors import CommandError, CommandTimeout, ProviderError, SubmitError
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.slurm import SlurmProvider, parse_sacct, parse_squeue
from campus_factory.transport.executor import CommandResult

# -- a scripted executor ------------------------------------------------------------------------
Answer = tuple[int, str, str] | BaseException


@dataclass(frozen=True)
class Call:
    argv: tuple[str, ...]
    stdin: str | None
    env: Mapping[str, str] | None
    timeout: float


class ScriptedExecutor:
    """Answers each command with the first scripted answer whose argv prefix matches."""

    def __init__(self, *script: tuple[Sequence[str], Answer]) -> None:
        self.script = [(tuple(prefix), answer) for prefix, answer in script]
        self.calls: list[Call] = []

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        args = tuple(argv)
        self.calls.append(Call(args, stdin, env, timeout))
        for i, (prefix, answer) in enumerate(self.script):
            if args[: len(prefix)] == prefix:
                del self.script[i]
                if isinstance(answer, BaseException):
                    raise answer
                rc, out, err = answer
                return CommandResult(args, rc, out, err)
        raise AssertionError(f"unexpected command {args}")

    def argvs(self) -> list[tuple[str, ...]]:
        return [c.argv for c in self.calls]


def site(**batch: Any) -> SiteConfig:
    return SiteConfig(
        name="alpha",
        provider="slurm",
        walltime=4 * 3600.0,
        batch=BatchOptions(**{"work_dir": "/scratch/cf", **batch}),
    )


def provider(executor: ScriptedExecutor, **batch: Any) -> SlurmProvider:
    return SlurmProvider(site(**batch), PilotOptions(), executor, "campus")


def request(i: int = 0, *, cpus: int = 8, gpus: int = 0, walltime_s: float = 4 * 3600.0) -> PilotRequest:
    return PilotRequest(f"alpha-p{i}", cpus=cpus, memory_mb=16000, disk_mb=40000, gpus=gpus, walltime_s=walltime_s)


def submission(n: int = 1, **kw: Any) -> Submission:
    return Submission("abc0123456", "cf-campus-abc0123456", tuple(request(i, **kw) for i in range(n)))


OK: Answer = (0, "", "")


# -- parse_squeue -------------------------------------------------------------------------------
SQUEUE = """\
12_3|RUNNING|3|None|cf-campus-abc0123456
12_4|PENDING|4|Priority|cf-campus-abc0123456

13|COMPLETING|N/A|(null)|cf-campus-def
14|CANCELLED|N/A|None|a|name|with|pipes
  15 | SUSPENDED | N/A | Resources | user-job
"""


def test_parse_squeue() -> None:
    jobs = {j.job_id: j for j in parse_squeue(SQUEUE)}
    assert list(jobs) == ["12_3", "12_4", "13", "14", "15"]
    assert (jobs["12_3"].state, jobs["12_3"].array_index, jobs["12_3"].tag) == (
        JobState.RUNNING,
        3,
        "cf-campus-abc0123456",
    )
    assert (jobs["12_4"].state, jobs["12_4"].reason, jobs["12_4"].native_state) == (
        JobState.PENDING,
        "Priority",
        "PENDING",
    )
    assert (jobs["13"].state, jobs["13"].array_index, jobs["13"].reason) == (JobState.RUNNING, None, "")
    assert jobs["14"].state is JobState.CANCELLED
    assert jobs["14"].tag == "a|name|with|pipes"
    assert (jobs["15"].state, jobs["15"].reason, jobs["15"].tag) == (JobState.RUNNING, "Resources", "user-job")
    assert not any(j.from_accounting for j in jobs.values())
    assert all(j.exit_code is None for j in jobs.values())


@pytest.mark.parametrize("text", ["", "\n\n", "   \n"])
def test_parse_squeue_of_nothing_is_no_job(text: str) -> None:
    assert parse_squeue(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "slurm_load_jobs error: Socket timed out on send/recv operation\n",
        "12|RUNNING|N/A|None|cf-campus-x\nnonsense\n",
        "1|RUNNING|N/A\n",
        "a|b|c|d\n",
    ],
)
def test_a_garbled_squeue_listing_is_an_error_not_an_empty_queue(text: str) -> None:
    """Issue 15 item 3: squeue may print its error on stdout and exit 0; a line that is not a
    job makes the whole listing unreadable (a failed read), never a queue without our jobs."""
    with pytest.raises(ValueError, match="squeue"):
        parse_squeue(text)


@pytest.mark.parametrize(
    ("native", "state"),
    [
        ("PENDING", JobState.PENDING),
        ("REQUEUED", JobState.PENDING),
        ("CONFIGURING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("COMPLETING", JobState.RUNNING),
        ("COMPLETED", JobState.COMPLETED),
        ("TIMEOUT", JobState.COMPLETED),
        ("CANCELLED", JobState.CANCELLED),
        ("CANCELLED by 0", JobState.CANCELLED),
        ("PREEMPTED", JobState.CANCELLED),
        ("FAILED", JobState.FAILED),
        ("NODE_FAIL", JobState.FAILED),
        ("OUT_OF_MEMORY", JobState.FAILED),
        ("running", JobState.RUNNING),
    ],
)
def test_state_translation(native: str, state: JobState) -> None:
    (job,) = parse_squeue(f"5|{native}|N/A|None|x\n")
    assert job.state is state
    (acct,) = parse_sacct(f"5|{native}|0:0|x\n")
    assert acct.state is state


def test_unknown_state_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        (job,) = parse_squeue("5|WEIRD_NEW_STATE|N/A|None|x\n")
    assert job.state is JobState.UNKNOWN
    assert job.native_state == "WEIRD_NEW_STATE"
    assert any(
        r.levelno == logging.WARNING and "WEIRD_NEW_STATE" in r.getMessage() and "slurm" in r.getMessage()
        for r in caplog.records
    )


# -- parse_sacct --------------------------------------------------------------------------------
SACCT = """\
12_3|COMPLETED|0:0|cf-campus-abc0123456
13|FAILED|1:0|cf-campus-def
14|CANCELLED by 0|0:15|cf-campus-def
15|OUT_OF_MEMORY|0:125|job
16|TIMEOUT|0:0|job
|RUNNING|0:0|no-id
garbage

17|RUNNING|weird|job
12_[5-9]|PENDING|0:0|cf-campus-abc0123456
"""


def test_parse_sacct() -> None:
    jobs = {j.job_id: j for j in parse_sacct(SACCT)}
    assert list(jobs) == ["12_3", "13", "14", "15", "16", "17", "12_[5-9]"]
    assert all(j.from_accounting for j in jobs.values())
    assert (jobs["12_3"].state, jobs["12_3"].exit_code, jobs["12_3"].array_index) == (
        JobState.COMPLETED,
        0,
        3,
    )
    assert (jobs["13"].state, jobs["13"].exit_code, jobs["13"].array_index) == (JobState.FAILED, 1, None)
    assert jobs["14"].state is JobState.CANCELLED
    assert jobs["14"].native_state == "CANCELLED"
    assert jobs["14"].reason == "CANCELLED by 0"
    assert jobs["14"].exit_code == 143
    assert jobs["15"].exit_code == 128 + 125
    assert (jobs["16"].state, jobs["16"].reason) == (JobState.COMPLETED, "")
    assert jobs["17"].exit_code is None
    assert jobs["12_[5-9]"].array_index is None
    assert jobs["12_3"].tag == "cf-campus-abc0123456"


@pytest.mark.parametrize(("code", "expected"), [("0:0", 0), ("1:0", 1), ("0:15", 143), ("2:9", 137), ("", None)])
def test_sacct_exit_codes(code: str, expected: int | None) -> None:
    (job,) = parse_sacct(f"7|FAILED|{code}|x\n")
    assert job.exit_code == expected


# -- declarations -------------------------------------------------------------------------------
def test_directives_for_one_pilot() -> None:
    p = provider(ScriptedExecutor())
    assert p.directives(submission(1)) == [
        "--job-name=cf-campus-abc0123456",
        "--output=/scratch/cf/cf-campus-abc0123456-%j.out",
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=8",
        "--mem=16000",
        "--time=240",
        "--signal=B:TERM@300",
    ]


def test_directives_for_an_array_of_three() -> None:
    d = provider(ScriptedExecutor()).directives(submission(3))
    assert "--array=0-2" in d
    assert "--output=/scratch/cf/cf-campus-abc0123456-%A_%a.out" in d
    assert not any(x.endswith("%j.out") for x in d)
    assert sum(x.startswith("--array") for x in d) == 1


def test_directives_gpus_and_site_options() -> None:
    p = provider(
        ScriptedExecutor(),
        partition="gpu",
        account="htc",
        qos="preemptable",
        extra_directives=("--constraint=avx2", "--exclusive"),
    )
    d = p.directives(submission(1, gpus=2))
    assert "--gres=gpu:2" in d
    assert d[-5:] == ["--partition=gpu", "--account=htc", "--qos=preemptable", "--constraint=avx2", "--exclusive"]


def test_directives_without_optional_parts() -> None:
    d = provider(ScriptedExecutor()).directives(submission(1))
    assert not any(x.startswith(("--gres", "--partition", "--account", "--qos", "--array")) for x in d)


@pytest.mark.parametrize(
    ("walltime_s", "margin", "expected"),
    [
        (4 * 3600.0, 300.0, "--signal=B:TERM@300"),
        (120.0, 300.0, "--signal=B:TERM@60"),  # capped at half the walltime
        (601.0, 300.0, "--signal=B:TERM@300"),
        (10**7, 10**6, "--signal=B:TERM@65535"),
        (3600.0, 0.0, None),
        (1.0, 300.0, None),  # half a second rounds down to nothing
    ],
)
def test_signal_margin(walltime_s: float, margin: float, expected: str | None) -> None:
    d = provider(ScriptedExecutor(), term_margin=margin).directives(submission(1, walltime_s=walltime_s))
    signals = [x for x in d if x.startswith("--signal")]
    assert signals == ([expected] if expected else [])


@pytest.mark.parametrize(("walltime_s", "minutes"), [(3600.0, 60), (3601.0, 61), (1.0, 1), (59.0, 1)])
def test_time_directive_rounds_up_to_minutes(walltime_s: float, minutes: int) -> None:
    d = provider(ScriptedExecutor()).directives(submission(1, walltime_s=walltime_s))
    assert f"--time={minutes}" in d


@pytest.mark.parametrize(
    ("stdout", "n", "ids"),
    [
        ("12345\n", 1, ["12345"]),
        ("12345;cluster-a\n", 1, ["12345"]),
        ("  77 \n", 1, ["77"]),
        ("12345;cluster-a\n", 3, ["12345_0", "12345_1", "12345_2"]),
        ("9\nsbatch: warning: something\n", 2, ["9_0", "9_1"]),
    ],
)
def test_parse_submit(stdout: str, n: int, ids: list[str]) -> None:
    assert provider(ScriptedExecutor()).parse_submit(stdout, submission(n)) == ids


@pytest.mark.parametrize(
    ("stdout", "error"),
    [("", IndexError), ("\n", IndexError), ("Submitted batch job 5\n", ValueError), ("abc;x", ValueError)],
)
def test_parse_submit_rejects(stdout: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        provider(ScriptedExecutor()).parse_submit(stdout, submission(1))


def test_cancel_argvs_are_plain_scancel_under_bin_dir() -> None:
    p = provider(ScriptedExecutor())
    assert p.cancel_argvs(["1", "2_3"], graceful=False) == [["scancel", "1", "2_3"]]
    q = provider(ScriptedExecutor(), bin_dir="/opt/slurm/bin")
    assert q.cancel_argvs(["1"], graceful=True) == [["/opt/slurm/bin/scancel", "1"]]
    assert q.queue_argv()[0] == "/opt/slurm/bin/squeue"
    assert q.submit_argv(submission(1))[0] == "/opt/slurm/bin/sbatch"
    assert {a[0] for a in q.accounting_argvs(["1"])} == {"/opt/slurm/bin/sacct"}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("auto", [["sacct"], ["sacct", "-c"]]), ("sacct", [["sacct"]]), ("jobcomp", [["sacct", "-c"]]), ("none", [])],
)
def test_accounting_argvs(mode: str, expected: list[list[str]]) -> None:
    argvs = provider(ScriptedExecutor(), accounting=mode).accounting_argvs(["1", "2_0"])
    assert [a[: len(e)] for a, e in zip(argvs, expected, strict=True)] == expected
    for a in argvs:
        assert a[-2:] == ["-j", "1,2_0"]
        assert "JobID,State,ExitCode,Start,End,JobName" in a


def test_queue_argv_lists_array_elements_in_all_states() -> None:
    argv = provider(ScriptedExecutor()).queue_argv()
    assert argv[0] == "squeue"
    assert "-r" in argv and "-h" in argv
    assert argv[argv.index("-t") + 1] == "all"
    assert argv[argv.index("-o") + 1] == "%i|%T|%K|%r|%S|%e|%j"


# -- submit through the base --------------------------------------------------------------------
def test_submit_mkdir_once_then_sbatch_with_script_on_stdin() -> None:
    ex = ScriptedExecutor(
        (["mkdir"], OK),
        (["sbatch"], (0, "777;cluster-a\n", "")),
        (["sbatch"], (0, "778\n", "")),
    )
    p = provider(ex, environment={"SLURM_CONF": "/etc/slurm/other.conf"}, command_timeout=12.0)
    first = asyncio.run(p.submit(submission(3)))
    second = asyncio.run(p.submit(submission(1)))
    assert [(s.pilot_id, s.job_id) for s in first] == [
        ("alpha-p0", "777_0"),
        ("alpha-p1", "777_1"),
        ("alpha-p2", "777_2"),
    ]
    assert [(s.pilot_id, s.job_id) for s in second] == [("alpha-p0", "778")]
    assert ex.argvs() == [
        ("mkdir", "-p", "/scratch/cf"),
        ("sbatch", "--parsable"),
        ("sbatch", "--parsable"),
    ]
    assert all(c.env == {"SLURM_CONF": "/etc/slurm/other.conf"} for c in ex.calls)
    assert all(c.timeout == 12.0 for c in ex.calls)
    assert ex.calls[0].stdin is None
    script = ex.calls[1].stdin
    assert script is not None and script.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-2\n" in script
    assert "#SBATCH --job-name=cf-campus-abc0123456\n" in script
    assert "cf_ids=(alpha-p0 alpha-p1 alpha-p2)" in script
    assert "export CAMPUS_FACTORY_SITE=alpha\n" in script
    assert "export CAMPUS_FACTORY_SUBMISSION=abc0123456\n" in script
    assert "sleep infinity &" in script


def test_submit_nothing_runs_nothing() -> None:
    ex = ScriptedExecutor()
    assert asyncio.run(provider(ex).submit(Submission("s", "t", ()))) == []
    assert ex.calls == []


def test_submit_without_environment_passes_no_env() -> None:
    ex = ScriptedExecutor((["mkdir"], OK), (["sbatch"], (0, "5\n", "")))
    asyncio.run(provider(ex).submit(submission(1)))
    assert [c.env for c in ex.calls] == [None, None]


def test_failing_sbatch_raises_submit_error_with_stderr() -> None:
    stderr = "sbatch: error: Batch job submission failed: Invalid account or account/partition combination"
    ex = ScriptedExecutor((["mkdir"], OK), (["sbatch"], (1, "", stderr + "\n")))
    with pytest.raises(SubmitError) as info:
        asyncio.run(provider(ex).submit(submission(1)))
    assert "Invalid account or account/partition combination" in str(info.value)
    assert info.value.site == "alpha"
    assert isinstance(info.value.__cause__, CommandError)
    assert info.value.__cause__.returncode == 1


def test_failing_mkdir_is_retried_on_the_next_submission() -> None:
    ex = ScriptedExecutor(
        (["mkdir"], (1, "", "mkdir: cannot create directory: Permission denied")),
        (["mkdir"], OK),
        (["sbatch"], (0, "9\n", "")),
    )
    p = provider(ex)
    with pytest.raises(SubmitError, match="Permission denied"):
        asyncio.run(p.submit(submission(1)))
    assert asyncio.run(p.submit(submission(1)))[0].job_id == "9"
    assert [a[0] for a in ex.argvs()] == ["mkdir", "mkdir", "sbatch"]


def test_sbatch_timeout_is_a_submit_error() -> None:
    ex = ScriptedExecutor((["mkdir"], OK), (["sbatch"], CommandTimeout(["sbatch", "--parsable"], 30.0)))
    with pytest.raises(SubmitError, match="timed out"):
        asyncio.run(provider(ex).submit(submission(1)))


@pytest.mark.parametrize("stdout", ["", "Submitted batch job 12\n", "sbatch: error\n"])
def test_unparsable_sbatch_answer_is_a_submit_error(stdout: str) -> None:
    ex = ScriptedExecutor((["mkdir"], OK), (["sbatch"], (0, stdout, "some warning")))
    with pytest.raises(SubmitError, match="cannot read the job id") as info:
        asyncio.run(provider(ex).submit(submission(1)))
    assert "some warning" in str(info.value)


# -- observe through the base -------------------------------------------------------------------
QUEUE = """\
12_0|RUNNING|0|None|cf-campus-abc0123456
12_1|PENDING|1|Priority|cf-campus-abc0123456
99|RUNNING|N/A|None|cf-campus-ffffffffff
100|RUNNING|N/A|None|somebody-else
"""


def test_observe_queue_then_accounting_fallback_then_gone() -> None:
    ex = ScriptedExecutor(
        (["squeue"], (0, QUEUE, "")),
        (["sacct", "-X"], (1, "", "Slurm accounting storage is disabled")),
        (["sacct", "-c"], (0, "13|COMPLETED|0:0|cf-campus-x\n14|FAILED|1:0|cf-campus-x\n", "")),
    )
    obs = asyncio.run(provider(ex).observe(["12_0", "12_1", "13", "14", "15"], "cf-campus-"))
    assert [a[:2] for a in ex.argvs()] == [("squeue", "--me"), ("sacct", "-X"), ("sacct", "-c")]
    assert ex.argvs()[1][-2:] == ("-j", "13,14,15")
    assert ex.argvs()[2][-2:] == ("-j", "13,14,15")
    st = obs.statuses
    assert set(st) == {"12_0", "12_1", "13", "14", "15"}
    assert st["12_0"].state is JobState.RUNNING and not st["12_0"].from_accounting
    assert st["12_1"].state is JobState.PENDING
    assert (st["13"].state, st["13"].exit_code, st["13"].from_accounting) == (JobState.COMPLETED, 0, True)
    assert (st["14"].state, st["14"].exit_code) == (JobState.FAILED, 1)
    assert st["15"].state is JobState.GONE
    assert sorted(t.job_id for t in obs.tagged) == ["12_0", "12_1", "99"]


def test_observe_all_in_queue_skips_accounting() -> None:
    ex = ScriptedExecutor((["squeue"], (0, QUEUE, "")))
    obs = asyncio.run(provider(ex).observe(["12_0"], "cf-other-"))
    assert len(ex.calls) == 1
    assert set(obs.statuses) == {"12_0"}
    assert obs.tagged == []


def test_observe_plain_sacct_answer_is_enough() -> None:
    ex = ScriptedExecutor(
        (["squeue"], (0, "", "")),
        (["sacct", "-X"], (0, "13|CANCELLED by 1000|0:15|x\n", "")),
    )
    obs = asyncio.run(provider(ex).observe(["13"], "cf-campus-"))
    assert len(ex.calls) == 2
    assert obs.statuses["13"].state is JobState.CANCELLED
    assert obs.statuses["13"].exit_code == 143


def test_observe_sacct_without_the_job_tries_jobcomp() -> None:
    ex = ScriptedExecutor(
        (["squeue"], (0, "", "")),
        (["sacct", "-X"], (0, "999|COMPLETED|0:0|unrelated\n", "")),
        (["sacct", "-c"], (0, "", "")),
    )
    obs = asyncio.run(provider(ex).observe(["13"], "cf-campus-"))
    assert len(ex.calls) == 3
    assert set(obs.statuses) == {"13"}
    assert obs.statuses["13"].state is JobState.GONE


def test_observe_accounting_command_error_is_skipped() -> None:
    ex = ScriptedExecutor(
        (["squeue"], (0, "", "")),
        (["sacct", "-X"], CommandTimeout(["sacct"], 30.0)),
        (["sacct", "-c"], (0, "13|COMPLETED|0:0|x\n", "")),
    )
    obs = asyncio.run(provider(ex).observe(["13"], "cf-campus-"))
    assert obs.statuses["13"].state is JobState.COMPLETED


def test_observe_without_accounting_reports_gone() -> None:
    ex = ScriptedExecutor((["squeue"], (0, "", "")))
    obs = asyncio.run(provider(ex, accounting="none").observe(["13"], "cf-campus-"))
    assert len(ex.calls) == 1
    assert obs.statuses["13"].state is JobState.GONE


@pytest.mark.parametrize(
    "answer",
    [(1, "", "slurm_load_jobs error: Unable to contact slurm controller"), CommandTimeout(["squeue"], 30.0)],
)
def test_failing_squeue_raises_provider_error(answer: Answer) -> None:
    ex = ScriptedExecutor((["squeue"], answer))
    with pytest.raises(ProviderError) as info:
        asyncio.run(provider(ex).observe(["1"], "cf-campus-"))
    assert not isinstance(info.value, SubmitError)
    assert info.value.site == "alpha"
    assert len(ex.calls) == 1
    if isinstance(answer, tuple):
        assert "Unable to contact slurm controller" in str(info.value)


# -- cancel through the base --------------------------------------------------------------------
def _left_out(*ids: str) -> Answer:
    lines = "".join(f"scancel: error: Kill job error on job id {j}: Invalid job id specified\n" for j in ids)
    return (1, "", lines)


def test_graceful_cancel_removes_pending_plainly_and_signals_running_in_one_call() -> None:
    """Issue 15 item 11: `scancel --batch --signal=TERM` on a pending job retries until the
    command timeout (Slurm 22.05), so pending and running jobs are told apart by --state."""
    ex = ScriptedExecutor(
        (["scancel", "--state=PENDING"], _left_out("5")),
        (["scancel", "--batch", "--signal=TERM", "--state=RUNNING"], _left_out("6_1")),
    )
    results = asyncio.run(provider(ex).cancel(["5", "6_1"]))
    assert ex.argvs() == [
        ("scancel", "--state=PENDING", "5", "6_1"),
        ("scancel", "--batch", "--signal=TERM", "--state=RUNNING", "5", "6_1"),
    ]
    assert sorted((r.job_id, r.ok) for r in results) == [("5", True), ("6_1", True)]


def test_graceful_cancel_plainly_cancels_jobs_neither_filter_took() -> None:
    ex = ScriptedExecutor(
        (["scancel", "--state=PENDING"], _left_out("5", "7")),
        (["scancel", "--batch"], _left_out("7")),
        (["scancel", "7"], OK),
    )
    results = asyncio.run(provider(ex).cancel(["5", "7"]))
    assert ex.argvs()[-1] == ("scancel", "7")
    assert sorted((r.job_id, r.ok) for r in results) == [("5", True), ("7", True)]


def test_graceful_cancel_whose_signal_times_out_falls_back_to_plain_scancel() -> None:
    ex = ScriptedExecutor(
        (["scancel", "--state=PENDING"], _left_out("5")),
        (["scancel", "--batch"], CommandTimeout(["scancel"], 30.0)),
        (["scancel", "5"], OK),
    )
    results = asyncio.run(provider(ex).cancel(["5"]))
    assert ex.argvs()[-1] == ("scancel", "5") and results[0].ok


def test_graceful_cancel_succeeding_first_stops() -> None:
    ex = ScriptedExecutor((["scancel", "--state=PENDING"], OK), (["scancel", "--batch"], OK))
    results = asyncio.run(provider(ex).cancel(["5"]))
    assert len(ex.calls) == 2
    assert results[0].ok


def test_cancel_reports_failure_with_stderr_when_all_fail() -> None:
    ex = ScriptedExecutor(
        (["scancel", "--state=PENDING"], (1, "", "first problem")),
        (["scancel", "--batch"], (1, "", "first problem")),
        (["scancel"], (1, "", "second problem")),
    )
    results = asyncio.run(provider(ex).cancel(["5", "6"]))
    assert [r.ok for r in results] == [False, False]
    assert all("second problem" in r.detail for r in results)


def test_plain_cancel_runs_only_scancel() -> None:
    ex = ScriptedExecutor((["scancel"], (1, "", "Invalid job id specified")))
    results = asyncio.run(provider(ex).cancel(["5"], graceful=False))
    assert ex.argvs() == [("scancel", "5")]
    assert not results[0].ok
    assert "Invalid job id specified" in results[0].detail


def test_cancel_command_error_is_reported_not_raised() -> None:
    ex = ScriptedExecutor((["scancel"], CommandTimeout(["scancel", "5"], 30.0)))
    results = asyncio.run(provider(ex).cancel(["5"], graceful=False))
    assert not results[0].ok and "timed out" in results[0].detail


def test_cancel_nothing_runs_nothing() -> None:
    ex = ScriptedExecutor()
    assert asyncio.run(provider(ex).cancel([])) == []
    assert ex.calls == []
