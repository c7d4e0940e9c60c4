"""The REST boundary: what a request may carry, with its bounds (one place, used by ``app.py``).

Query values are finite numbers within bounds (``since=nan`` or ``window=1e-300`` are answered
422, not computed with); counts of pilots are at most :data:`MAX_PILOTS` (``ceiling=2**63`` would
overflow the ledger's integer column); texts are at most 500 characters of encodable,
printable text: a lone surrogate (``"\\ud800"``, valid JSON, not encodable in UTF-8) or a control
character (a forged log line, a terminal escape) is refused. Everything past this is typed,
finite and bounded.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, Field

__all__ = [
    "MAX_PILOTS",
    "MAX_TIME",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "Count",
    "Points",
    "Text",
    "Timestamp",
    "Window",
    "clean_text",
]

#: the most pilots a floor or ceiling may name (no site holds more)
MAX_PILOTS = 1_000_000
#: the latest UNIX time a query may name (year 2514)
MAX_TIME = float(2**34)
#: the shortest and longest history window, in seconds
MIN_WINDOW, MAX_WINDOW = 60.0, 90 * 86400.0


def clean_text(text: str) -> str:
    """Text that can be stored and printed as it is: no lone surrogate, no control character."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the text is not valid Unicode (a lone surrogate)") from None
    if any((ord(c) < 32 and c != "\t") or 127 <= ord(c) < 160 for c in text):
        raise ValueError("the text cannot contain line breaks or control characters")
    return text


#: a reason or note: at most 500 characters of printable text
Text = Annotated[str, Field(max_length=500), AfterValidator(clean_text)]
#: a number of pilots
Count = Annotated[int, Field(ge=0, le=MAX_PILOTS)]
#: a UNIX time in a query
Timestamp = Annotated[float, Query(ge=0, le=MAX_TIME, allow_inf_nan=False, description="UNIX time.")]
#: a history window in a query, in seconds
Window = Annotated[float, Query(ge=MIN_WINDOW, le=MAX_WINDOW, allow_inf_nan=False, description="Seconds.")]
#: points of a history series
Points = Annotated[int, Query(ge=2, le=500)]
