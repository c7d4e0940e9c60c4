"""Thin helpers over the real ClassAd library (``classad2``).

Ads are built from parsed expressions, never from concatenated text: every attribute name must
match the ClassAd name grammar in full and every value must parse as exactly one expression
(:func:`check_expression`), then each is set as its own ``classad2.ExprTree``. Text such as a
Requirements of ``true; Owner = "alice"``, a value ``(1); Owner = "alice"`` or a name
``x = 1; Owner`` can therefore never add or replace an attribute. (Setting Python *values* item
by item gave wrong scoping with classad2 25.x: an unscoped attribute of the TARGET ad evaluated
to UNDEFINED; parsed expression trees do not.) Matching uses the library's own ``matches``:
``a.matches(b)`` evaluates **b's** Requirements with ``a`` as TARGET.

This module imports nothing from the project: anything may use it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import classad2

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


class ClassAdError(ValueError):
    """ClassAd text that the library cannot parse."""


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


# -- bounds on what is parsed and evaluated (issue 15) ---------------------------------------------
#: characters of one expression (an attribute's value) outside its string literals, and in all;
#: bracket nesting inside it
MAX_EXPRESSION_CHARS = 16_384
MAX_TEXT_CHARS = 4 << 20
MAX_NESTING = 64
#: estimated evaluation depth and work (tokens evaluated) of a Requirements with every attribute it
#: refers to, in its own ad and the other, expanded. classad2 fails past a depth of about 1000 and
#: takes seconds on attributes that double each other 25 times: both stay far below that here.
MAX_DEPTH = 300
MAX_WORK = 20_000

_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"?|\'(?:[^\'\\]|\\.)*\'?'  # strings, quoted attribute names
    r"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"  # names, scoped names
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"  # numbers
    r"|=\?=|=!=|&&|\|\||[<>=!]=|>>>|<<|>>|\S"  # operators, brackets, anything else
)
_WORDS = frozenset({"true", "false", "undefined", "error", "is", "isnt"})
_OPEN, _CLOSE = "([{", ")]}"
_OPERATORS = frozenset({"=?=", "=!=", "&&", "||", "<=", ">=", "==", "!=", ">>>", "<<", ">>", *"+-*/%<>!~&|^?:"})


@dataclass(frozen=True)
class _Shape:
    """One expression: its own depth and work estimates, and the attributes it refers to."""

    depth: int
    work: int
    refs: tuple[tuple[str, str], ...] = field(default=())  # (scope "my"/"target"/"", lower-case name)


def _shape(text: str) -> _Shape:
    """Measure one expression; :class:`ClassAdError` when it is over the text or nesting bound."""
    if len(text) > MAX_TEXT_CHARS:
        raise ClassAdError(f"expression of {len(text)} characters (at most {MAX_TEXT_CHARS})")
    tokens = _TOKEN.findall(text)
    code = sum(len(t) for t in tokens if t[0] not in "\"'")
    if code > MAX_EXPRESSION_CHARS:
        raise ClassAdError(f"expression of {code} characters outside strings (at most {MAX_EXPRESSION_CHARS})")
    stack = [[0, 0]]  # per open bracket: [operators, deepest child]
    refs: list[tuple[str, str]] = []
    for i, tok in enumerate(tokens):
        if tok in _OPEN:
            stack.append([0, 0])
            if len(stack) > MAX_NESTING:
                raise ClassAdError(f"expression nested deeper than {MAX_NESTING} brackets")
        elif tok in _CLOSE and len(stack) > 1:
            ops, child = stack.pop()
            stack[-1][1] = max(stack[-1][1], 1 + ops + child)
        elif tok in _OPERATORS:
            stack[-1][0] += 1
        elif (tok[0].isalpha() or tok[0] == "_") and tok.lower() not in _WORDS:
            if i + 1 < len(tokens) and tokens[i + 1] == "(":
                continue  # a function call
            head, _, rest = tok.lower().partition(".")
            refs.append((head, rest.split(".", 1)[0]) if head in ("my", "target") and rest else ("", head))
    while len(stack) > 1:  # unbalanced: the parser refuses it anyway
        ops, child = stack.pop()
        stack[-1][1] = max(stack[-1][1], 1 + ops + child)
    return _Shape(1 + stack[0][0] + stack[0][1], len(tokens), tuple(refs))


def check_bounds(text: str) -> str:
    """Return ``text`` when it is within every bound on its own (size, nesting, depth, work)."""
    shape = _shape(text)
    if shape.depth > MAX_DEPTH or shape.work > MAX_WORK:
        raise ClassAdError(
            f"expression too complex to evaluate (depth about {shape.depth}, at most {MAX_DEPTH}; "
            f"{shape.work} tokens, at most {MAX_WORK})"
        )
    return text


def _closed(shapes: Mapping[str, _Shape]) -> dict[str, tuple[int, int]]:
    """Expanded depth and work of each attribute whose references, followed all the way, stay in
    its own ad and form no cycle: the same against every other ad, so measured once per ad."""
    out: dict[str, tuple[int, int]] = {}
    open_: set[str] = set()  # attributes that reach the other ad, or a cycle

    def local(scope: str, name: str) -> str | None:  # "" when absent (adds nothing), None: not closed
        if scope == "target" or (scope == "" and name not in shapes):
            return None
        return name if name in shapes else ""

    for root in shapes:
        todo: list[tuple[str, bool]] = [(root, False)]
        path: set[str] = set()
        while todo:
            name, done = todo.pop()
            if name in out or name in open_:
                continue
            refs = [local(scope, n) for scope, n in shapes[name].refs]
            if not done:
                if name in path or None in refs:
                    open_.add(name)
                    continue
                path.add(name)
                todo.append((name, True))
                todo.extend((r, False) for r in refs if r)
                continue
            path.discard(name)
            if any(r in open_ or (r and r not in out) for r in refs):
                open_.add(name)
                continue
            shape = shapes[name]
            depth, work = shape.depth, shape.work
            for r in refs:
                if r:
                    d, w = out[r]
                    depth, work = max(depth, shape.depth + d), min(work + w, 1 << 40)
            out[name] = (depth, work)
    return out


def _expanded(
    ads: tuple[Mapping[str, _Shape], Mapping[str, _Shape]],
    closed: tuple[Mapping[str, tuple[int, int]], Mapping[str, tuple[int, int]]] = ({}, {}),
) -> tuple[int, int]:
    """Depth and work of ``ads[0]``'s Requirements with ``ads[1]`` as TARGET, references expanded
    (an attribute being expanded counts once: the library cuts circular references). ``closed``:
    each ad's self-contained attributes already measured (:func:`_closed`)."""
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

    resolved: dict[tuple[int, str], list[tuple[int, str]]] = {}

    def measure(key: tuple[int, str]) -> tuple[int, int]:
        shape = ads[key[0]][key[1]]
        depth, work = shape.depth, shape.work
        for r in resolved[key]:
            d, w = memo.get(r, (1, 1))  # not measured: a circular reference, cut by the library
            depth = max(depth, shape.depth + d)
            work = min(work + w, 1 << 40)
        return depth, work

    while todo:
        side, name, done = todo.pop()
        key = (side, name)
        if done:
            busy.discard(key)
            memo[key] = measure(key)
            continue
        if key in memo or key in busy:
            continue
        refs = resolved[key] = []
        for scope, n in ads[side][name].refs:
            r = target(side, scope, n)
            if r is None:
                continue
            refs.append(r)
            if r not in memo and (c := closed[r[0]].get(r[1])) is not None:
                memo[r] = c
        pending = [r for r in refs if r not in memo and r not in busy]
        if not pending:
            memo[key] = measure(key)
            continue
        busy.add(key)
        todo.append((side, name, True))
        todo.extend((s, n, False) for s, n in pending)
    return memo.get((0, "requirements"), (0, 0))


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
