"""Cloud answers (issue 15, the cloud boundary): tags read back from an instance are text of the
cloud's; any text gives a status (a bad index is no index), never an exception. ``"²"`` passes
``str.isdigit`` and then fails ``int``: it once raised out of observe."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from campus_factory.loop.reconcile import tag_pattern
from campus_factory.providers._cloud import TAG_INDEX, TAG_SUBMISSION, status_from_tags
from campus_factory.providers.base import JobState


def test_odd_index_tags_give_no_index() -> None:
    for raw in ("²", "\u0661", "1\n", "-1", "", " 1", "9" * 400, "0x1"):
        assert status_from_tags("i-1", JobState.RUNNING, "running", {TAG_INDEX: raw}).array_index is None
    assert status_from_tags("i-1", JobState.RUNNING, "running", {TAG_INDEX: "3"}).array_index == 3


@settings(max_examples=300, deadline=None)
@given(tags=st.dictionaries(st.sampled_from([TAG_INDEX, TAG_SUBMISSION, "x"]), st.text(max_size=20)))
def test_any_tags_give_a_status(tags: dict[str, str]) -> None:
    status = status_from_tags("i-1", JobState.RUNNING, "running", tags)
    assert status.array_index is None or 0 <= status.array_index < 10**9
    assert status.tag == tags.get(TAG_SUBMISSION, "")


def test_a_tag_with_a_trailing_newline_is_not_ours() -> None:
    pattern = tag_pattern("cf-campus-")
    assert pattern.match("cf-campus-0123456789")
    assert not pattern.match("cf-campus-0123456789\n")
