"""Tests of the pilot batch script: quoting, rejection of unsafe values, the TERM trap.

The rendered scripts are really run with bash; directive lines are comments to bash.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from campus_factory.errors import NotSupportedError, UnsafeValueError
from campus_factory.pilot.script import PilotScript, check_directive, render_batch_script

BASH = shutil.which("bash") or "/bin/bash"


def spec(
    *,
    directives: Sequence[str] = ("--job-name=cf-test", "--time=5"),
    pilot_ids: Sequence[str] = ("alpha-0001",),
    payload: str = "command",
    command: Sequence[str] = ("true",),
    environment: Mapping[str, str] | None = None,
    array_index_var: str = "SLURM_ARRAY_TASK_ID",
    array_base: int = 0,
) -> PilotScript:
    return PilotScript(
        directive_prefix="#SBATCH",
        directives=list(directives),
        pilot_ids=list(pilot_ids),
        payload=payload,
        command=list(command),
        environment=dict(environment or {}),
        array_index_var=array_index_var,
        array_base=array_base,
    )


def clean_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", **extra}


def run_script(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pilot.sh"
    path.write_text(text, encoding="utf-8")
    return subprocess.run(
        [BASH, str(path)],
        cwd=tmp_path,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=10,
    )


def payload_output(stdout: str) -> str:
    """What the payload printed: between the pilot's 'starting' and 'leaving' lines."""
    lines = stdout.split("\n")
    start = next(i for i, line in enumerate(lines) if " starting on " in line)
    end = max(i for i, line in enumerate(lines) if " leaving (rc=" in line)
    return "\n".join(lines[start + 1 : end]) + "\n"


# -- rendering ----------------------------------------------------------------------------------
def test_rendered_script_passes_bash_syntax_check(tmp_path: Path) -> None:
    text = render_batch_script(
        spec(
            pilot_ids=["a-1", "a-2", "a-3"],
            command=["sleep", "infinity"],
            environment={"CAMPUS_FACTORY_SITE": "alpha", "X": 'it\'s "quoted"'},
        )
    )
    path = tmp_path / "s.sh"
    path.write_text(text, encoding="utf-8")
    check = subprocess.run([BASH, "-n", str(path)], capture_output=True, text=True, timeout=5)
    assert check.returncode == 0, check.stderr
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[1:3] == ["#SBATCH --job-name=cf-test", "#SBATCH --time=5"]
    assert "trap cf_leave TERM INT" in lines


def test_directives_come_before_any_command() -> None:
    text = render_batch_script(spec(directives=["--a", "--b", "--c"]))
    lines = text.splitlines()
    first_code = next(i for i, line in enumerate(lines[1:], 1) if not line.startswith("#"))
    assert [line for line in lines[:first_code] if line.startswith("#SBATCH")] == [
        "#SBATCH --a",
        "#SBATCH --b",
        "#SBATCH --c",
    ]


def test_payload_exit_code_is_the_script_exit_code(tmp_path: Path) -> None:
    result = run_script(tmp_path, render_batch_script(spec(command=["sh", "-c", "echo hi; exit 3"])))
    assert result.returncode == 3
    assert "hi\n" in result.stdout
    assert "leaving (rc=3, asked=0)" in result.stdout


HOSTILE = [
    "$(touch {tmp}/pwned)",
    "`touch {tmp}/pwned`",
    "'; touch {tmp}/pwned; '",
    '"; touch {tmp}/pwned; "',
    "x\ntouch {tmp}/pwned\n",
    "; rm -rf / ; touch {tmp}/pwned",
    "$(touch {tmp}/pwned)'`touch {tmp}/pwned`'\"$HOME\" \\ && touch {tmp}/pwned",
    "${{PATH:?}} $((1+1)) *",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_command_arguments_are_printed_literally(tmp_path: Path, template: str) -> None:
    hostile = template.format(tmp=tmp_path)
    text = render_batch_script(spec(command=["printf", "%s\n", hostile]))
    result = run_script(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "pwned").exists()
    assert payload_output(result.stdout) == hostile + "\n"


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_environment_values_are_exported_literally(tmp_path: Path, template: str) -> None:
    hostile = template.format(tmp=tmp_path)
    text = render_batch_script(spec(environment={"CF_HOSTILE": hostile}, command=["printenv", "CF_HOSTILE"]))
    result = run_script(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "pwned").exists()
    assert payload_output(result.stdout) == hostile + "\n"


@pytest.mark.parametrize("template", [h for h in HOSTILE if "\n" not in h])
def test_hostile_directives_without_line_breaks_stay_comments(tmp_path: Path, template: str) -> None:
    hostile = template.format(tmp=tmp_path)
    text = render_batch_script(spec(directives=[f"--comment={hostile}"], command=["echo", "ok"]))
    result = run_script(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "pwned").exists()
    assert payload_output(result.stdout) == "ok\n"


# -- rejected values ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "directive",
    ["--job-name=a\nrm -rf /", "--x\r", "--x\x00y", "--x\ty", "--x\x7f", "\n"],
)
def test_unsafe_directives(directive: str) -> None:
    with pytest.raises(UnsafeValueError):
        check_directive(directive)
    with pytest.raises(UnsafeValueError):
        render_batch_script(spec(directives=["--ok", directive]))


@pytest.mark.parametrize("directive", ["--ok", "--comment=a b 'c' $(d)", "", "--partition=x;y"])
def test_safe_directives_pass_unchanged(directive: str) -> None:
    assert check_directive(directive) == directive


@pytest.mark.parametrize(
    "pilot_id",
    ["", "-leading-dash", ".hidden", "a b", "a;b", "a$(x)", "a`x`", "a'b", "a/b", "a\nb", "x" * 129],
)
def test_invalid_pilot_ids(pilot_id: str) -> None:
    with pytest.raises(UnsafeValueError):
        render_batch_script(spec(pilot_ids=["good-1", pilot_id]))


@pytest.mark.parametrize("pilot_id", ["a", "alpha-0123456789", "A.b_c-D", "9" * 128])
def test_valid_pilot_ids(pilot_id: str) -> None:
    assert pilot_id in render_batch_script(spec(pilot_ids=[pilot_id]))


@pytest.mark.parametrize("name", ["", "1ABC", "A-B", "A B", "A;B", "A=B", "$X", "A\nB"])
def test_invalid_environment_names(name: str) -> None:
    with pytest.raises(UnsafeValueError):
        render_batch_script(spec(environment={name: "v"}))


@pytest.mark.parametrize("name", ["", "1X", "X-Y", "X}; touch y; {", "X:-0"])
def test_invalid_array_index_variable(name: str) -> None:
    with pytest.raises(UnsafeValueError):
        render_batch_script(spec(array_index_var=name))


def test_glidein_payload_not_supported() -> None:
    with pytest.raises(NotSupportedError, match="glidein"):
        render_batch_script(spec(payload="glidein"))


@pytest.mark.parametrize(("kwargs", "match"), [({"pilot_ids": []}, "pilot id"), ({"command": []}, "empty")])
def test_empty_ids_or_command(kwargs: dict[str, list[str]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render_batch_script(spec(**kwargs))  # type: ignore[arg-type]


# -- array index --------------------------------------------------------------------------------
IDS = ["site-a", "site-b", "site-c"]
ECHO_ID = ["sh", "-c", "echo $CAMPUS_FACTORY_PILOT_ID"]


@pytest.mark.parametrize(
    ("var", "base", "value", "expected"),
    [
        ("SLURM_ARRAY_TASK_ID", 0, None, "site-a"),
        ("SLURM_ARRAY_TASK_ID", 0, "0", "site-a"),
        ("SLURM_ARRAY_TASK_ID", 0, "1", "site-b"),
        ("SLURM_ARRAY_TASK_ID", 0, "2", "site-c"),
        ("PBS_ARRAYID", 1, "1", "site-a"),
        ("PBS_ARRAYID", 1, "3", "site-c"),
        ("PBS_ARRAYID", 1, None, "site-a"),
    ],
)
def test_array_index_picks_the_pilot_id(tmp_path: Path, var: str, base: int, value: str | None, expected: str) -> None:
    text = render_batch_script(spec(pilot_ids=IDS, command=ECHO_ID, array_index_var=var, array_base=base))
    env = clean_env(**({var: value} if value is not None else {}))
    result = run_script(tmp_path, text, env)
    assert result.returncode == 0, result.stderr
    assert payload_output(result.stdout) == expected + "\n"
    assert f"campus-factory pilot {expected} starting" in result.stdout


# -- the TERM trap ------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """The direct children of ``pid``, from every process's parent in /proc/<pid>/stat."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_term_is_forwarded_and_the_pilot_exits_zero(tmp_path: Path) -> None:
    script = tmp_path / "pilot.sh"
    script.write_text(render_batch_script(spec(command=["sleep", "30"])), encoding="utf-8")
    proc = subprocess.Popen(
        [BASH, str(script)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60  # polls: at once when idle
        sleepers: list[int] = []
        while time.monotonic() < deadline and not sleepers:
            time.sleep(0.1)
            sleepers = [c for c in _children(proc.pid) if Path(f"/proc/{c}/comm").read_text().strip() == "sleep"]
        assert sleepers, "the payload did not start"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "asked=1" in out
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in sleepers):
            time.sleep(0.05)
        assert not any(_alive(p) for p in sleepers), "the payload survived the TERM"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
