"""Thin helpers over the real ClassAd library (``classad2``).

Ads are built from parsed expressions, never from concatenated text: every attribute name must
match the ClassAd name grammar in full and every value must parse as exactly one expression
(:func:`check_expression`), then each is set as its own ``classad2.ExprTree``. Text such as a
Requirements of ``true; Owner = "alice"``, a value ``(1); Owner = "alice"`` or a name
``x = 1; Owner`` can therefore never add or replace an attribute. (Setting Python *values* item
by item gave wrong scoping with classad2 25.x: an unscoped attribute of the TARGET ad evaluated
to UNDEFINED; parsed expression trees do not.) Matching uses the library's own ``matches``:
``a.matches(b)`` evaluates **b's** Requirements with ``a`` as TARGET.

This package imports nothing from the project: anything may use it. What an expression may cost
(size, nesting, depth and work with its references expanded) is measured in :mod:`.bounds`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import classad2

from .bounds import (
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_NESTING,
    MAX_TEXT_CHARS,
    MAX_WORK,
    ClassAdError,
    _closed,
    _expanded,
    _Shape,
    _shape,
    check_bounds,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_NESTING",
    "MAX_TEXT_CHARS",
    "MAX_WORK",
    "ClassAdError",
    "ParsedAd",
    "ad_from_attributes",
    "ad_text",
    "check_bounds",
    "check_expression",
    "conjuncts",
    "expression",
    "failed_clauses",
    "is_identifier",
    "literal",
    "matches",
    "parse_ad",
    "parsed_ad",
    "requirements_met",
    "signature",
    "value_text",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
#: names of the attributes of an ad we build: no scope prefix, no dots
_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")

# classad2 25.14 quirk (reproduced here): the first parse loads htcondor2 to register HTCondor's
# ClassAd functions (versionGE, ...), and an ad parsed before the process's first evaluation of an
# ad attribute can keep a wrong binding: condor_submit's default Requirements then evaluate to
# ERROR on it for good. One parse and evaluation at import avoids it.
classad2.parseOne('[CampusFactoryWarmUp = versionGE("25.0.0", "24.0.0")]').eval("CampusFactoryWarmUp")


def is_identifier(name: str) -> bool:
    """True for a valid ClassAd attribute name."""
    return bool(_IDENT.fullmatch(name))


def literal(value: object) -> str:
    """ClassAd text of a Python literal: bool, int, float, str (quoted) or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        quoted: str = classad2.quote(value)
        return quoted
    if isinstance(value, list | tuple):
        return "{ " + ", ".join(literal(v) for v in value) + " }"
    raise TypeError(f"no ClassAd literal for {type(value).__name__}")


def check_expression(text: str) -> str:
    """Return ``text`` when it parses as one ClassAd expression within :func:`check_bounds`,
    else raise :class:`ClassAdError`.

    classad2 parses the longest valid prefix and ignores the rest (``true; Owner = "x"`` gives
    ``true``), so the text is also parsed as an attribute followed by a marker attribute: text
    left over breaks the ad, or adds or hides an attribute of it.
    """
    check_bounds(text)
    end = f"cfEnd{secrets.token_hex(6)}"
    try:
        classad2.ExprTree(text)
        ads = list(classad2.parseAds(f"[cfExpr = ({text}); {end} = 1]"))
    except Exception as exc:  # classad2 raises its own exception type
        raise ClassAdError(f"not a valid ClassAd expression: {text!r}") from exc
    if len(ads) != 1 or sorted(k.lower() for k in ads[0]) != sorted(["cfexpr", end.lower()]):
        raise ClassAdError(f"not a single ClassAd expression: {text!r}")
    return text


def ad_text(attributes: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """``[name = expr; ...]``, for display only: ads are built by :func:`ad_from_attributes`."""
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    return "[" + "; ".join(f"{k} = {v}" for k, v in items) + "]"


def parse_ad(text: str) -> Any:
    """A ``classad2.ClassAd`` from its text; raises :class:`ClassAdError`."""
    try:
        ad = classad2.parseOne(text)
    except Exception as exc:
        raise ClassAdError(f"cannot parse ClassAd: {text[:200]!r}") from exc
    if len(ad) == 0 and text.strip().strip("[]").strip():  # parseOne gives [] on a syntax error
        raise ClassAdError(f"cannot parse ClassAd: {text[:200]!r}")
    return ad


def expression(text: str) -> Any:
    """One parsed ClassAd expression (``classad2.ExprTree``); text holding more is refused."""
    check_expression(text)
    try:
        return classad2.ExprTree(text)
    except Exception as exc:
        raise ClassAdError(f"not a valid ClassAd expression: {text[:200]!r}") from exc


def ad_from_attributes(attributes: Mapping[str, str] | Iterable[tuple[str, str]]) -> Any:
    """A ``classad2.ClassAd`` from attribute -> expression text, one parsed expression each.

    A name outside the grammar, a value that is not exactly one expression, or a name given twice
    (ClassAd names are case-insensitive) raises :class:`ClassAdError` naming the attribute.

    The values are parsed together, each under a fresh random name (``cf<hex>_<i>``), in one
    ad: text that would add an attribute, close the ad or start another shows up as a name that
    is not one of those (it cannot guess them), and the ad is refused. Each parsed tree is then
    set under its real name.
    """
    items = list(attributes.items() if isinstance(attributes, Mapping) else attributes)
    seen: set[str] = set()
    for name, _ in items:
        if not isinstance(name, str) or not _ATTRIBUTE.fullmatch(name):
            raise ClassAdError(f"{str(name)[:80]!r} is not a ClassAd attribute name")
        if name.lower() in seen:
            raise ClassAdError(f"attribute {name} is given twice")
        seen.add(name.lower())
    key = f"cf{secrets.token_hex(8)}_"
    text = "[" + "; ".join(f"{key}{i} = {value}" for i, (_, value) in enumerate(items)) + "]"
    try:
        ads = list(classad2.parseAds(text))
    except Exception:
        ads = []
    expected = {f"{key}{i}".lower() for i in range(len(items))}
    if len(ads) != 1 or {k.lower() for k in ads[0]} != expected:
        for name, value in items:  # name the first bad one
            try:
                check_expression(value)
            except ClassAdError as exc:
                raise ClassAdError(f"attribute {name}: {exc}") from None
        raise ClassAdError("the attributes do not parse as one ClassAd of one expression each")
    ad = classad2.ClassAd()
    for i, (name, _) in enumerate(items):
        ad[name] = ads[0].lookup(f"{key}{i}")
    return ad


def matches(target: Any, ad: Any) -> bool:
    """True when ``ad``'s Requirements is true with ``target`` as TARGET (the library's rule)."""
    return bool(target.matches(ad))


@dataclass(frozen=True)
class ParsedAd:
    """A parsed ad with its Requirements looked up once (matching many times is cheaper), and the
    measure of each attribute (for the bounds :func:`requirements_met` checks)."""

    ad: Any
    requirements: Any | None
    always: bool
    shapes: Mapping[str, _Shape] = field(default_factory=dict)
    #: expanded measures of the attributes that refer only within this ad (:func:`_closed`)
    closed: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: Requirements' references: the measures of those in this ad, the names of those in the
    #: other; None when one in this ad is not self-contained (then the whole walk is needed)
    quick: tuple[tuple[tuple[int, int], ...], tuple[str, ...]] | None = None


def parsed_ad(attributes: Mapping[str, str] | Iterable[tuple[str, str]]) -> ParsedAd:
    """:func:`ad_from_attributes`, keeping the Requirements expression and whether it is ``true``.
    Every attribute is measured first: one over the text or nesting bound is refused unparsed."""
    items = list(attributes.items() if isinstance(attributes, Mapping) else attributes)
    shapes: dict[str, _Shape] = {}
    for name, text in items:
        try:
            shapes[name.lower()] = _shape(text)
        except ClassAdError as exc:
            raise ClassAdError(f"attribute {name[:100]}: {exc}") from None
    ad = ad_from_attributes(items)
    low = {k.lower(): v.strip().lower() for k, v in items}
    req = low.get("requirements")
    always = req == "true" or (req == "start" and low.get("start") == "true")
    try:
        expr = ad.lookup("Requirements")
    except KeyError:
        expr = None
    closed = _closed(shapes)
    return ParsedAd(ad, expr, always, shapes, closed, _quick_plan(shapes, closed))


def _quick_plan(
    shapes: Mapping[str, _Shape], closed: Mapping[str, tuple[int, int]]
) -> tuple[tuple[tuple[int, int], ...], tuple[str, ...]] | None:
    req = shapes.get("requirements")
    if req is None:
        return None
    own: list[tuple[int, int]] = []
    other: list[str] = []
    for scope, n in req.refs:
        if scope == "target" or (scope == "" and n not in shapes):
            other.append(n)
        elif n in shapes:
            c = closed.get(n)
            if c is None:
                return None
            own.append(c)
    return tuple(own), tuple(other)


def _quick(ad: ParsedAd, target: ParsedAd) -> tuple[int, int] | None:
    """:func:`_expanded` when every attribute Requirements refers to is self-contained (the
    usual job and slot ads): one lookup per reference instead of a walk; else None."""
    if ad.quick is None:
        return None
    own, other = ad.quick
    shape = ad.shapes["requirements"]
    depth, work = shape.depth, shape.work
    for d, w in own:
        depth, work = max(depth, shape.depth + d), min(work + w, 1 << 40)
    for n in other:
        if n in target.shapes:
            c = target.closed.get(n)
            if c is None:
                return None
            depth, work = max(depth, shape.depth + c[0]), min(work + c[1], 1 << 40)
    return depth, work


def requirements_met(ad: ParsedAd, target: ParsedAd) -> bool:
    """``target.ad.matches(ad.ad)`` without the per-call lookup: same conversion rules.

    Raises :class:`ClassAdError` when the Requirements, with what it refers to in both ads, is
    beyond :data:`MAX_DEPTH` or :data:`MAX_WORK`, or when the library fails to evaluate it: the
    caller decides what that one pair costs (the planner: that group at that site)."""
    if ad.always:
        return True
    if ad.requirements is None:
        return False
    if "requirements" in ad.shapes:
        quick = _quick(ad, target)
        depth, work = quick if quick is not None else _expanded((ad.shapes, target.shapes), (ad.closed, target.closed))
        if depth > MAX_DEPTH or work > MAX_WORK:
            raise ClassAdError(
                f"Requirements too complex to evaluate (with the attributes it refers to: depth about "
                f"{depth}, at most {MAX_DEPTH}; {work} tokens, at most {MAX_WORK})"
            )
    try:
        result = ad.requirements.eval(ad.ad, target.ad)
    except Exception as exc:  # classad2 raises its own exception type (e.g. past its depth limit)
        raise ClassAdError(f"Requirements cannot be evaluated: {exc}") from None
    if isinstance(result, classad2.Value):
        return False
    if isinstance(result, bool | int | float):
        return bool(result)
    return False


def value_text(value: object) -> str:
    """A short printable form of an evaluation result."""
    if isinstance(value, classad2.Value):
        return str(value.name).upper()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return literal(value)
    return str(value)


def conjuncts(text: str) -> list[str]:
    """The top-level ``&&`` clauses of an expression, outer parentheses unwrapped recursively.

    ``(a && b) && c`` gives ``["a", "b", "c"]``; ``a || (b && c)`` gives one clause.
    """
    parts: list[str] = []
    depth = 0
    quote = False
    start = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "&" and depth == 0 and text.startswith("&&", i):
            parts.append(text[start:i])
            start = i + 2
            i += 1
        i += 1
    parts.append(text[start:])
    out: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        inner = _unwrap(part)
        out.extend(conjuncts(inner) if inner is not None else [part])
    return out


def _unwrap(part: str) -> str | None:
    """The inside of ``( ... )`` when the parentheses enclose the whole text."""
    if not (part.startswith("(") and part.endswith(")")):
        return None
    depth = 0
    quote = False
    for i, ch in enumerate(part):
        if quote:
            quote = not (ch == '"' and part[i - 1] != "\\")
        elif ch == '"':
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(part) - 1:
                return None
    return part[1:-1]


def failed_clauses(expression: str, scope: Any, target: Any) -> list[tuple[str, str]]:
    """The top-level clauses of ``expression`` that are not true in (scope, target), with values.

    An empty list means every clause is true (or the expression has no ``&&`` and is true).
    """
    out: list[tuple[str, str]] = []
    for clause in conjuncts(expression):
        try:
            value = classad2.ExprTree(clause).eval(scope, target)
        except Exception:
            out.append((clause, "ERROR"))
            continue
        if isinstance(value, classad2.Value):
            out.append((clause, value_text(value)))
            continue
        if value is True or (isinstance(value, int | float) and not isinstance(value, bool) and value != 0):
            continue
        out.append((clause, value_text(value)))
    return out


def signature(attributes: Iterable[tuple[str, str]]) -> str:
    """A stable short hash of sorted attribute -> expression text pairs."""
    h = hashlib.sha256()
    for name, expr in sorted(attributes):
        h.update(name.lower().encode())
        h.update(b"\x1f")
        h.update(expr.encode())
        h.update(b"\x1e")
    return h.hexdigest()[:16]
