"""What the planner evaluates is bounded (issue 15, item 2).

A job group whose Requirements has hundreds of clauses, or whose attributes refer to each other
so that each doubles the one before, costs only that group: it matches no site, with the reason
in the plan and in ``plan explain``, and every other group is planned as before. A site whose
slot ad is beyond the bounds costs only that site. A ``slot.start`` beyond them is refused when
the config is loaded. Any text as a Requirements gives a match result or our ClassAdError.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from campus_factory import classads
from campus_factory.classads import ClassAdError, parsed_ad, requirements_met
from campus_factory.config import parse_config
from campus_factory.domain import JobGroup
from campus_factory.errors import ConfigError
from campus_factory.planner import plan
from campus_factory.planner.explain import group_explanation, render_group_explanation
from campus_factory.planner.match import MatchCache
from campus_factory.planner.slotad import SlotPolicy, build_slot_ad
from campus_factory.planner.types import SiteSpec

CLAUSES_400 = " && ".join(f"TARGET.Memory >= {i}" for i in range(400))  # about 9 kB
DOUBLING = {"A0": "1", **{f"A{i}": f"(A{i - 1} + A{i - 1})" for i in range(1, 40)}}


def site(name: str, learned: dict[str, str] | None = None) -> SiteSpec:
    ad = build_slot_ad(name, 8, 16000, 0, 0, 4 * 3600.0, SlotPolicy(), learned)
    return SiteSpec(name, 8, 16000, 0, 0, walltime_s=4 * 3600.0, slot_ad=ad, max_submit_per_cycle=4)


def good(gid: str = "good") -> JobGroup:
    return JobGroup(gid, 3, cpus=1, memory_mb=100, disk_mb=0, owner="alice", requirements="TARGET.Memory >= 100")


POISONS = {
    "400 clauses": JobGroup("bad", 5, cpus=1, memory_mb=100, disk_mb=0, owner="eve", requirements=CLAUSES_400),
    "doubling attributes": JobGroup(
        "bad", 5, cpus=1, memory_mb=100, disk_mb=0, owner="eve", requirements="A39 > 0", attributes=DOUBLING
    ),
    "deep nesting": JobGroup(
        "bad", 5, cpus=1, memory_mb=100, disk_mb=0, owner="eve", requirements="(" * 500 + "true" + ")" * 500
    ),
    "1000 clauses": JobGroup("bad", 5, cpus=1, memory_mb=100, disk_mb=0, requirements=" && ".join(["true"] * 1000)),
}


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_a_poisoned_group_costs_only_that_group(poison: str) -> None:
    sites = [site("a"), site("b")]
    p = plan([POISONS[poison], good()], sites, [], 1000.0)
    bad, ok = p.group("bad"), p.group("good")
    assert ok.site == "a" and ok.pilots == 1, ok
    assert bad.site is None and bad.pilots == 0 and bad.matched == ()
    assert "matches no site" in bad.reason and (
        "too complex" in bad.reason or "nested" in bad.reason or "characters" in bad.reason or "parse" in bad.reason
    ), bad.reason
    # plan explain shows why, at every site
    data = group_explanation(p, POISONS[poison], sites, MatchCache())
    text = render_group_explanation(data)
    assert all(r["match"] == "no: ad" for r in data["sites"]), data["sites"]
    assert text.count("false: [ad] job ad:") == 2, text


def test_a_site_whose_slot_ad_is_beyond_the_bounds_costs_only_that_site() -> None:
    bad = site("bad", learned={"A0": "1", **{f"A{i}": f"A{i - 1} + A{i - 1}" for i in range(1, 40)}})
    bad = SiteSpec(
        "bad", 8, 16000, 0, 0, walltime_s=4 * 3600.0, max_submit_per_cycle=4,
        slot_ad=type(bad.slot_ad)(tuple((k, "A39 > 0" if k == "START" else v) for k, v in bad.slot_ad.attributes)
                                  + tuple(DOUBLING.items())),
    )  # fmt: skip
    p = plan([good()], [bad, site("ok")], [], 1000.0)
    assert p.group("good").site == "ok" and p.group("good").matched == ("ok",)
    row = next(r for r in group_explanation(p, good(), [bad, site("ok")])["sites"] if r["site"] == "bad")
    assert row["match"] == "no: ad" and "slot ad" in row["failed"][0]["clause"]


def config(start: str) -> dict[str, object]:
    return {"sites": [{"name": "s", "provider": "slurm", "walltime": "1h", "slot": {"start": start}}]}


@pytest.mark.parametrize(
    "start",
    [
        " || ".join(f'Owner == "user{i}"' for i in range(9000)),
        " && ".join(["true"] * 400),
        "(" * 100 + "true" + ")" * 100,
    ],
    ids=["9000 clauses", "400 clauses", "nesting 100"],
)
def test_a_slot_start_beyond_the_bounds_is_refused_at_load(start: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(start))
    assert "sites[0].slot" in str(info.value) or "start" in str(info.value)


def test_a_slot_start_within_the_bounds_loads_and_matches() -> None:
    start = " || ".join(f'TARGET.Owner == "user{i}"' for i in range(100))
    cfg = parse_config(config(start))
    assert cfg.sites[0].slot.start == start


MACHINE = parsed_ad([("Memory", "16000"), ("Cpus", "8"), ("Requirements", "true"), ("Owner", '"x"')])
ATOMS = st.sampled_from(["true", "false", "TARGET.Memory", "MY.A", "A", "B", "1", "-2", '"s"', "undefined", "Owner"])
OPS = st.sampled_from([" && ", " || ", " + ", " * ", " == ", " >= ", " =?= ", " ? ", " : "])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 4 or draw(st.booleans()):
        return draw(ATOMS)
    n = draw(st.integers(1, 400 if depth == 0 else 3))  # up to hundreds of clauses, a few kB
    parts = [draw(expressions(depth + 1)) for _ in range(min(n, 3))] * (n // 3 + 1)
    op = draw(OPS)
    text = op.join(parts[:n])
    return f"({text})" if draw(st.booleans()) else ("!" * draw(st.integers(0, 3))) + text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=st.one_of(expressions(), st.text(max_size=200)), a=expressions(), b=expressions())
def test_any_requirements_gives_a_result_or_our_error(req: str, a: str, b: str) -> None:
    """Generated expressions (hundreds of clauses, nesting, references) and arbitrary text."""
    try:
        job = parsed_ad([("A", a), ("B", b), ("Requirements", req)])
        assert isinstance(requirements_met(job, MACHINE), bool)
        assert isinstance(requirements_met(MACHINE, job), bool)
        event("evaluated")
    except ClassAdError as exc:
        event(
            "refused: "
            + ("bounds" if "complex" in str(exc) or "nested" in str(exc) or "characters" in str(exc) else "parse")
        )


def test_the_largest_accepted_chain_still_evaluates() -> None:
    """The bound sits below what the library can evaluate: an accepted expression is evaluated."""
    last = None
    for n in range(1, classads.MAX_DEPTH + 2):
        try:
            job = parsed_ad([("Requirements", " && ".join(["TARGET.Memory >= 1"] * n))])
            assert requirements_met(job, MACHINE) is True
            last = n
        except ClassAdError:
            break
    assert last is not None and last >= 100


_names = st.sampled_from(["requirements", "a", "b", "c", "d", "memory", "start"])
_refs = st.lists(st.tuples(st.sampled_from(["", "my", "target"]), _names), max_size=4)
_ad_shapes = st.dictionaries(
    _names,
    st.builds(classads._Shape, st.integers(1, 50), st.integers(1, 500), _refs.map(tuple)),
    max_size=7,
)


def _walked(ads: tuple[dict[str, classads._Shape], dict[str, classads._Shape]]) -> tuple[int, int]:
    """The expansion walked node by node (the measure as first written: the reference)."""
    memo: dict[tuple[int, str], tuple[int, int]] = {}
    # iterative depth-first walk: (side, name, expanded?)
    todo: list[tuple[int, str, bool]] = [(0, "requirements", False)]
    busy: set[tuple[int, str]] = set()

    def target(side: int, scope: str, name: str) -> tuple[int, str] | None:
        if scope == "my":
            return (side, name) if name in ads[side] else None
        if scope == "target":
            return (1 - side, name) if name in ads[1 - side] else None
        if name in ads[side]:
            return side, name
        return (1 - side, name) if name in ads[1 - side] else None

    while todo:
        side, name, done = todo.pop()
        key = (side, name)
        shape = ads[side][name]
        refs = [r for scope, n in shape.refs if (r := target(side, scope, n)) is not None]
        if not done:
            if key in memo or key in busy:
                continue
            busy.add(key)
            todo.append((side, name, True))
            todo.extend((s, n, False) for s, n in refs if (s, n) not in memo and (s, n) not in busy)
            continue
        busy.discard(key)
        depth, work = shape.depth, shape.work
        for r in refs:
            d, w = memo.get(r, (1, 1))
            depth = max(depth, shape.depth + d)
            work = min(work + w, 1 << 40)
        memo[key] = (depth, work)
    return memo.get((0, "requirements"), (0, 0))


@settings(max_examples=400)
@given(_ad_shapes, _ad_shapes)
def test_measuring_self_contained_attributes_once_changes_no_bound(
    job: dict[str, classads._Shape], slot: dict[str, classads._Shape]
) -> None:
    """The expansion with each ad's self-contained attributes measured once (any references,
    cycles, attributes of both ads) is the expansion walked through in full."""
    job.setdefault("requirements", classads._Shape(1, 1, ()))
    full = _walked((job, slot))
    assert classads._expanded((job, slot)) == full
    assert classads._expanded((job, slot), (classads._closed(job), classads._closed(slot))) == full
    ads = [
        classads.ParsedAd(None, None, False, x, c, classads._quick_plan(x, c))
        for x in (job, slot)
        for c in (classads._closed(x),)
    ]
    quick = classads._quick(ads[0], ads[1])
    assert quick is None or quick == full
