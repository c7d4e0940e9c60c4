"""The demand edge: every value that enters as demand is checked once, here (issue 15).

A demand file is JSON read with bounded size and nesting; a job
group's numbers are whole, finite and within :data:`LIMITS`; its text is valid Unicode (no lone
surrogates, no NUL) and of bounded length; its attribute names are ClassAd names. The same
bounds apply to groups read from the schedds. A value that fails gets a :class:`DemandError`
naming the group and the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..classads import MAX_TEXT_CHARS, is_identifier
from ..errors import DemandError

__all__ = [
    "LIMITS",
    "MAX_ATTRIBUTES",
    "MAX_FILE_BYTES",
    "MAX_GROUPS",
    "MAX_NAME_CHARS",
    "MAX_NESTING",
    "bounded_attribute",
    "bounded_int",
    "bounded_text",
    "loads",
]

#: (least, greatest) of each number of a job group
LIMITS: Mapping[str, tuple[int, int]] = {
    "count": (0, 10_000_000),
    "cpus": (1, 100_000),
    "memory_mb": (0, 1 << 30),  # 1 PiB
    "disk_mb": (0, 1 << 34),
    "gpus": (0, 10_000),
}
MAX_FILE_BYTES = 64 << 20
MAX_NESTING = 32
MAX_GROUPS = 100_000
MAX_ATTRIBUTES = 256
MAX_NAME_CHARS = 1024  # ids, owners, schedd names, job ids
_BAD_TEXT = re.compile("[\ud800-\udfff\x00]")
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def bounded_int(value: object, field: str, where: str) -> int:
    """A whole, finite number within ``LIMITS[field]`` (``2.0`` is 2; ``true``, ``"2"``, 2.5 are not)."""
    lo, hi = LIMITS[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DemandError(f"{where}: {field} must be a number, not {type(value).__name__}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise DemandError(f"{where}: {field} must be a whole finite number, not {value!r}")
    number = int(value)
    if not lo <= number <= hi:
        raise DemandError(f"{where}: {field} {number} is outside {lo}..{hi}")
    return number


def bounded_text(value: object, field: str, where: str, limit: int = MAX_NAME_CHARS) -> str:
    """Text that is valid Unicode (encodes to UTF-8: no lone surrogate), holds no NUL, and is at
    most ``limit`` characters long."""
    if not isinstance(value, str):
        raise DemandError(f"{where}: {field} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise DemandError(f"{where}: {field} is {len(value)} characters long (at most {limit})")
    bad = _BAD_TEXT.search(value)
    if bad is not None:
        raise DemandError(f"{where}: {field} holds {bad.group()!r} at {bad.start()}: not valid text")
    return value


def bounded_attribute(name: object, value: object, where: str) -> tuple[str, str]:
    """One job attribute: a ClassAd name and its ClassAd text (bounded like any expression)."""
    text = bounded_text(name, "attribute name", where, 256)
    if not is_identifier(text):
        raise DemandError(f"{where}: attribute name {text!r} is not a ClassAd attribute name")
    if isinstance(value, bool):
        return text, "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise DemandError(f"{where}: attribute {text} is {value!r}: not a finite number")
        return text, repr(value)
    return text, bounded_text(value, f"attribute {text}", where, MAX_TEXT_CHARS)


def _nesting(text: str) -> int:
    depth = deepest = 0
    for tok in _BRACKETS.findall(text):
        if tok in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif tok in "]}":
            depth -= 1
    return deepest


def loads(raw: bytes, source: str) -> Any:
    """JSON of a demand snapshot: at most :data:`MAX_FILE_BYTES`, valid UTF-8, nested at most
    :data:`MAX_NESTING` deep (``NaN`` and ``Infinity`` are refused by the bounds of the group
    holding them)."""
    if len(raw) > MAX_FILE_BYTES:
        raise DemandError(f"{source}: {len(raw)} bytes, more than a demand snapshot may hold ({MAX_FILE_BYTES})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DemandError(f"{source}: not UTF-8 text: {exc}") from None
    if _nesting(text) > MAX_NESTING:
        raise DemandError(f"{source}: JSON nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(text)  # NaN and Infinity become floats each group's bounds refuse
    except (ValueError, RecursionError) as exc:
        raise DemandError(f"{source}: cannot read the demand snapshot: not valid JSON: {str(exc)[:200]}") from None
