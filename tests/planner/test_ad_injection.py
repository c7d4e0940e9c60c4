"""ClassAd injection (issue 15, item 7): ads are built from parsed expressions, one per attribute,
so no Requirements, value or name text can add or replace an attribute (here: Owner, to pass a
site's ``allowed_owners``). Hypothesis: any name and any value text give either a ClassAdError or
an ad holding exactly the given names."""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from tests.planner.test_match import BASE_REQ, group, site

from campus_factory.classads import ClassAdError, ad_from_attributes, literal
from campus_factory.planner.match import MatchCache
from campus_factory.planner.slotad import SlotPolicy

ALICE_ONLY = SlotPolicy(allowed_owners=("alice",))
INJECTIONS = [
    {"requirements": 'true; Owner = "alice"'},
    {"requirements": BASE_REQ + '; Owner = "alice"'},
    {"attributes": {"Foo": '(1); Owner = "alice"'}},
    {"attributes": {"Foo": '1 ] [ Owner = "alice"'}},
    {"attributes": {"x = 1; Owner": '"alice"'}},
    {"attributes": {"Owner": '"alice"'}},
]


@pytest.mark.parametrize("kw", INJECTIONS, ids=repr)
def test_a_job_of_bob_never_passes_an_alice_only_site(kw: dict[str, object]) -> None:
    kw = dict(kw)
    g = group(str(kw.pop("requirements", BASE_REQ)), owner="bob", **kw)
    outcome = MatchCache().match(g, site(policy=ALICE_ONLY))
    assert not outcome.ok, outcome
    assert MatchCache().match(group(owner="alice"), site(policy=ALICE_ONLY)).ok


@pytest.mark.parametrize(
    "items",
    [
        [("Owner", '"bob"'), ("Foo", '(1); Owner = "alice"')],
        [("Owner", '"bob"'), ("Requirements", 'true; Owner = "alice"')],
        [("Owner", '"bob"'), ("x = 1; Owner", '"alice"')],
        [("Owner", '"bob"'), ("owner", '"alice"')],
        [("MY.Owner", '"alice"')],
        [("Foo\n", "1")],
    ],
    ids=repr,
)
def test_injected_attributes_are_refused(items: list[tuple[str, str]]) -> None:
    with pytest.raises(ClassAdError):
        ad_from_attributes(items)


NAMES = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.from_regex(r"Cf[A-Za-z0-9_]{0,8}", fullmatch=True),
    st.text(max_size=12),
)
VALUES = st.one_of(
    st.integers().map(str),
    st.sampled_from(["true", '"x"', "Memory > 1", "RequestCpus * 2", '{ "a", 1 }', "[ a = 1 ]", "undefined"]),
    st.text(st.sampled_from('Owner=;"alice()[]{} 1&|!\\'), max_size=30),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    st.sampled_from(['(1); Owner = "alice"', 'true; Owner = "alice"', '1 ] [ Owner = "alice"', "1 // x", "1;"]),
)


@settings(max_examples=400, deadline=None)
@given(items=st.lists(st.tuples(NAMES, VALUES), max_size=4))
def test_any_text_gives_an_error_or_exactly_the_given_attributes(items: list[tuple[str, str]]) -> None:
    owner = ("Owner", literal("bob"))
    try:
        ad = ad_from_attributes([owner, *items])
    except ClassAdError:
        event("refused")
        return
    event("built")
    assert {k.lower() for k in ad} == {"owner"} | {k.lower() for k, _ in items}
    assert ad.eval("Owner") == "bob"
