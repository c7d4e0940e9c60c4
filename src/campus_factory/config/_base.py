"""Shared pieces of the config schema: durations, name checks, the frozen section base."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

from ._grammar import MAX_DURATION, check_bounded, check_env_names

__all__ = ["Duration", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$"  # pydantic's (Rust) regex: $ is the end of the text


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"4h"``, ``"1h30m"``:
    finite, not negative, at most a year."""
    seconds = _duration(value)
    if not math.isfinite(seconds) or seconds > MAX_DURATION:
        raise ValueError(f"{str(value)[:40]!r} is too long a duration (at most 365 days)")
    return seconds


def _duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int) and value > MAX_DURATION:  # float() of a huge int overflows
        return math.inf
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        if math.isnan(value):
            raise ValueError("a duration must be a number (got nan)")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if len(text) > 64:
            return math.inf
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts).lower() != text.lower():
            raise ValueError(f"{value[:40]!r} is not a duration (use seconds, or e.g. '90s', '15m', '4h')")
        return float(sum(float(n) * _UNIT[u.lower()] for n, u in parts))
    raise ValueError(f"expected a duration, got {type(value).__name__}")


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _check_env_names(env: dict[str, str]) -> None:
    """Environment variable names a process accepts (os.environ refuses '=' and NUL)."""
    check_env_names(env)


def _nul_path(data: Any) -> str | None:
    """The key path of the first string (key or value) holding a NUL character, if any.

    NUL can be written in TOML (``\\u0000``) but no command line, environment or file name holds
    it: rejected here once, rather than failing a command at run time. Iterative (deep documents).
    """
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            return path or "(top level)"
        if isinstance(node, dict):
            for key, value in node.items():
                sub = f"{path}.{key}" if path else str(key)
                if "\x00" in str(key):
                    return sub
                stack.append((sub, value))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(node))
    return None


class _Section(BaseModel):
    """A config section: unknown keys refused, frozen, and every number in it (nested values
    too) finite and bounded (:func:`~._grammar.check_bounded`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value
        return check_bounded(value)
