"""Renders the batch script of a pilot.

Every value that reaches the script is either shell-quoted (``shlex.quote``) or, where quoting is
impossible (scheduler directive lines, which the scheduler parses itself), rejected when it
contains a line break or a NUL byte. The script traps TERM: it forwards it to the payload and
exits 0, so ``scancel --batch --signal=TERM`` lets a pilot leave cleanly.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import NotSupportedError, UnsafeValueError
from .glidein import GlideinSpec, glidein_payload

__all__ = ["END_LINES", "START_LINES", "PilotScript", "check_directive", "command_lines", "render_batch_script"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PILOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_directive(value: str) -> str:
    """A scheduler directive argument: no line breaks, NULs or other control characters."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UnsafeValueError(f"a scheduler directive cannot contain control characters: {value!r}")
    return value


@dataclass(frozen=True)
class PilotScript:
    """Everything a batch script needs; the provider supplies the scheduler-specific parts."""

    directive_prefix: str  # e.g. "#SBATCH"
    directives: Sequence[str]  # arguments, one directive line each
    pilot_ids: Sequence[str]
    payload: str  # "command" or "glidein"
    command: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)
    array_index_var: str = "SLURM_ARRAY_TASK_ID"
    array_base: int = 0
    glidein: GlideinSpec | None = None


#: the start of every pilot script after its environment: TERM or INT asks the payload to leave
START_LINES = [
    "cf_child=''",
    "cf_leaving=0",
    "cf_leave() {",
    "  cf_leaving=1",
    '  [ -n "$cf_child" ] && kill -TERM "$cf_child" 2>/dev/null',
    "}",
    "trap cf_leave TERM INT",
    'echo "campus-factory pilot $CAMPUS_FACTORY_PILOT_ID starting on $(hostname) at $(date -u +%FT%TZ)"',
]

#: the end: a pilot asked to leave exits 0, else with its payload's status (``cf_rc``)
END_LINES = [
    'echo "campus-factory pilot $CAMPUS_FACTORY_PILOT_ID leaving (rc=$cf_rc, asked=$cf_leaving)"',
    'if [ "$cf_leaving" = 1 ]; then exit 0; fi',
    'exit "$cf_rc"',
    "",
]


def command_lines(command: Sequence[str]) -> list[str]:
    """The ``command`` payload: run it in the background (so TERM reaches the trap), wait for it."""
    if not command:
        raise ValueError("the pilot command is empty")
    return [
        " ".join(shlex.quote(a) for a in command) + " &",
        "cf_child=$!",
        'wait "$cf_child"; cf_rc=$?',
        'while kill -0 "$cf_child" 2>/dev/null; do wait "$cf_child"; cf_rc=$?; done',
    ]


def render_batch_script(spec: PilotScript) -> str:
    """The full text of the batch script."""
    if spec.payload == "glidein" and spec.glidein is None:
        raise NotSupportedError(
            "pilot payload 'glidein' needs the pool's collector and a token, which this provider "
            'does not supply yet; use payload = "command"'
        )
    if spec.payload not in ("command", "glidein"):
        raise NotSupportedError(f"pilot payload {spec.payload!r} is not supported")
    if not spec.pilot_ids:
        raise ValueError("a batch script needs at least one pilot id")
    for pid in spec.pilot_ids:
        if not _PILOT_ID.fullmatch(pid):
            raise UnsafeValueError(f"invalid pilot id {pid!r}")
    if not _ENV_NAME.fullmatch(spec.array_index_var):
        raise UnsafeValueError(f"invalid variable name {spec.array_index_var!r}")
    if not spec.command:
        raise ValueError("the pilot command is empty")

    lines = ["#!/bin/bash"]
    lines += [f"{spec.directive_prefix} {check_directive(d)}" for d in spec.directives]
    lines += [
        "# campus-factory pilot: generated, do not edit.",
        "set -u",
        "cf_ids=(" + " ".join(shlex.quote(p) for p in spec.pilot_ids) + ")",
        f"cf_index=$(( ${{{spec.array_index_var}:-{spec.array_base}}} - {spec.array_base} ))",
        'export CAMPUS_FACTORY_PILOT_ID="${cf_ids[$cf_index]}"',
    ]
    for name, value in sorted(spec.environment.items()):
        if not _ENV_NAME.fullmatch(name):
            raise UnsafeValueError(f"invalid environment variable name {name!r}")
        lines.append(f"export {name}={shlex.quote(value)}")
    lines += START_LINES
    if spec.payload == "glidein" and spec.glidein is not None:
        lines += glidein_payload(spec.glidein)
    else:
        lines += command_lines(spec.command)
    lines += END_LINES
    return "\n".join(lines)
