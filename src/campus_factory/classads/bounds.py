"""What an expression may cost before the library evaluates it (issue 15): size, bracket nesting,
and the depth and work of a Requirements with every attribute it refers to expanded, in its own
ad and the other. One job's hostile Requirements, or one site's slot ad, is refused or costs only
itself instead of stalling every plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPRESSION_CHARS",
    "MAX_NESTING",
    "MAX_TEXT_CHARS",
    "MAX_WORK",
    "ClassAdError",
    "check_bounds",
]


class ClassAdError(ValueError):
    """ClassAd text that the library cannot parse (or that is beyond the bounds)."""


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
