"""Tests of the local executor, with real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from campus_factory.errors import CommandError, CommandTimeout, ProviderError
from campus_factory.transport.executor import CommandResult, LocalExecutor


def run(argv: Any, **kw: Any) -> CommandResult:
    kw.setdefault("timeout", 5.0)
    return asyncio.run(LocalExecutor().run(argv, **kw))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize(
    ("argv", "rc", "out", "err"),
    [
        (["sh", "-c", "echo out; echo err >&2"], 0, "out\n", "err\n"),
        (["sh", "-c", "printf 'a b'; exit 7"], 7, "a b", ""),
        (["true"], 0, "", ""),
        (["false"], 1, "", ""),
        (["printf", "%s|", "$(x)", "a'b", "*"], 0, "$(x)|a'b|*|", ""),
    ],
)
def test_output_and_exit_code_are_captured(argv: list[str], rc: int, out: str, err: str) -> None:
    result = run(argv)
    assert result.argv == tuple(argv)
    assert (result.returncode, result.stdout, result.stderr) == (rc, out, err)
    assert result.ok is (rc == 0)
    assert result.duration >= 0


def test_stdin_is_passed() -> None:
    text = "line one\nline 'two' $(three)\n"
    assert run(["cat"], stdin=text).stdout == text


def test_no_stdin_means_empty_input() -> None:
    result = run(["cat"])
    assert result.stdout == ""
    assert result.ok


def test_env_is_added_to_the_environment() -> None:
    result = run(["sh", "-c", 'echo "$CF_TEST_VAR:${PATH:+has-path}"'], env={"CF_TEST_VAR": "x y"})
    assert result.stdout == "x y:has-path\n"


def test_without_env_the_environment_is_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_INHERITED", "yes")
    assert run(["sh", "-c", 'echo "$CF_INHERITED"']).stdout == "yes\n"


@pytest.mark.parametrize("argv", ["echo hello", "", [], ()])
def test_shell_strings_and_empty_argv_are_refused(argv: Any) -> None:
    with pytest.raises(TypeError):
        run(argv)


def test_non_string_items_are_refused() -> None:
    with pytest.raises(TypeError):
        run(["echo", 1])


def test_nul_bytes_are_refused() -> None:
    with pytest.raises(ValueError):
        run(["echo", "a\x00b"])


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_non_positive_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError):
        run(["true"], timeout=timeout)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pids}; echo started; sleep 30"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        run(["sh", "-c", script], timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 25  # the timeout fired: it did not wait for the 30 s sleep (slack for a loaded host)
    err = info.value
    assert isinstance(err, CommandError) and isinstance(err, ProviderError)
    assert err.timeout == 0.5
    assert err.returncode is None
    assert err.argv == ["sh", "-c", script]
    assert "timed out after 0.5 s" in str(err)
    assert err.stdout == "started\n"
    background = int(pids.read_text())
    deadline = time.monotonic() + 30
    while _alive(background) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(background)
    if alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(background, signal.SIGKILL)
    assert not alive, "the background sleep outlived the timeout"


def test_missing_binary_raises_command_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-binary")
    with pytest.raises(CommandError) as info:
        run([missing, "--flag"])
    assert info.value.argv == [missing, "--flag"]
    assert info.value.returncode is None
    assert "cannot run" in str(info.value)
    assert info.value.stderr


def test_check_returns_self_on_success() -> None:
    result = CommandResult(("true",), 0, "o", "")
    assert result.check() is result


@pytest.mark.parametrize(
    ("stdout", "stderr", "detail"),
    [("some output", "the error", "the error"), ("only stdout", "  ", "only stdout"), ("", "", None)],
)
def test_check_raises_command_error_with_everything(stdout: str, stderr: str, detail: str | None) -> None:
    result = CommandResult(("sbatch", "--parsable"), 2, stdout, stderr)
    with pytest.raises(CommandError) as info:
        result.check(site="alpha", message="slurm submission failed")
    err = info.value
    assert (err.argv, err.returncode, err.stdout, err.stderr, err.site) == (
        ["sbatch", "--parsable"],
        2,
        stdout,
        stderr,
        "alpha",
    )
    assert str(err).startswith("slurm submission failed")
    if detail:
        assert str(err).endswith(detail)
    else:
        assert str(err) == "slurm submission failed"


def test_check_default_message_names_the_command() -> None:
    with pytest.raises(CommandError, match="command squeue exited 1"):
        CommandResult(("squeue",), 1, "", "").check()


def test_real_failure_then_check() -> None:
    result = run(["sh", "-c", "echo oops >&2; exit 3"])
    with pytest.raises(CommandError) as info:
        result.check()
    assert info.value.returncode == 3
    assert info.value.stderr == "oops\n"
    assert "oops" in str(info.value)


def test_equal_results_ignore_duration() -> None:
    assert CommandResult(("a",), 0, "", "", 1.0) == CommandResult(("a",), 0, "", "", 2.0)
