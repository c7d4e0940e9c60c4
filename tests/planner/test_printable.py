"""Group ids, owners and reasons with line breaks or terminal escapes (issue 15, item 10): logs in
the text format and `plan explain` show them escaped; a record stays one line, an explanation
keeps its own lines, and no ESC or lone surrogate reaches the reader. Hypothesis: any text."""

from __future__ import annotations

import io
import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from campus_factory.domain import JobGroup, printable
from campus_factory.logs import configure_logging, log_plan
from campus_factory.planner import MatchCache, SiteSpec, explain_group, explain_plan, plan

NOW = 1_000_000.0
FORGED = "g1\n2026-01-01 00:00:00 INFO campus_factory.loop: site alpha healthy \x1b[2J\x1b]0;pwned\x07"
OWNER = "mallory\r\n\u202eevil"  # (a lone surrogate is refused where demand enters)


def _logged(fn: object) -> str:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("text", stream=stream)
        fn()  # type: ignore[operator]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    return stream.getvalue()


def _clean(text: str) -> bool:
    return not any(c in text for c in "\x1b\x07\r\u202e\ud800")


def test_a_forged_group_id_stays_on_its_log_line() -> None:
    sites = [SiteSpec("alpha", 4, 8000)]
    p = plan([JobGroup(FORGED, 2, owner=OWNER)], sites, [], NOW)
    out = _logged(lambda: log_plan(logging.getLogger("campus_factory.test"), p.to_dict(), logging.INFO))
    lines = out.splitlines()
    assert len(lines) == 2, out  # one site decision, one group decision
    assert "g1\\n2026-01-01" in lines[1] and "\\x1b[2J" in lines[1] and _clean(out)


def test_plan_explain_escapes_group_ids_and_owners() -> None:
    sites = [SiteSpec("alpha", 4, 8000)]
    g = JobGroup(FORGED, 2, owner=OWNER, requirements='Owner == "a\\nb"')
    p = plan([g], sites, [], NOW)
    whole, one = explain_plan(p), explain_group(p, g, sites, MatchCache())
    assert _clean(whole) and _clean(one)
    assert not any(line.startswith("2026-01-01") for line in (whole + "\n" + one).splitlines())
    assert "g1\\n2026-01-01" in whole and "mallory\\r\\n\\u202eevil" in one


BAD = set("\x1b\x07\r\n\x00\x7f\x85\u202e\u2028\ud800")


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters(), max_size=40) | st.text(st.sampled_from([*sorted(BAD), "a", "\t", "é"]), max_size=20)
)
def test_printable_text_is_one_line_without_controls_and_encodable(text: str) -> None:
    shown = printable(text)
    assert not BAD & set(shown) and "\n" not in shown
    shown.encode("utf-8")
    if text.isprintable() and not BAD & set(text) and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert shown == text or any(0x200E <= ord(c) <= 0x2069 or ord(c) == 0x61C for c in text)
