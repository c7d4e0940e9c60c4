"""The import rules of the layout, read from the source (nothing is imported or run).

Each room of ``src/campus_factory/`` may import only the rooms listed for it below; the
foundation (config, errors, logs, classads, domain) imports nothing above it; the planner
reads no clock and touches no I/O module, so its purity is provable from its imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "campus_factory"

FOUNDATION = {"config", "errors", "logs", "classads", "domain"}

#: room -> the other rooms it may import (the foundation's modules are listed explicitly)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "logs": {"domain"},
    "domain": set(),
    "classads": {"errors"},
    "config": {"classads", "errors"},
    "planner": {"classads", "config", "domain"},
    "transport": FOUNDATION,
    "demand": FOUNDATION,
    "pool": FOUNDATION | {"planner"},
    "pilot": FOUNDATION | {"planner", "transport"},
    "providers": FOUNDATION | {"pilot", "transport"},
    "ledger": FOUNDATION,
    "loop": FOUNDATION | {"demand", "pool", "planner", "providers", "transport", "pilot", "ledger"},
    "admin": FOUNDATION | {"ledger", "pilot", "providers", "transport"},
    "api": FOUNDATION | {"ledger", "planner"},
    "sim": FOUNDATION | {"demand", "pool", "planner", "providers", "ledger", "loop", "pilot", "transport"},
    "cli": FOUNDATION
    | {"admin", "api", "demand", "ledger", "loop", "pilot", "planner", "pool", "providers", "sim", "transport"},
}

#: modules outside the package that would give the planner I/O or a clock
PLANNER_FORBIDDEN = {
    "asyncio",
    "datetime",
    "htcondor2",
    "os",
    "pathlib",
    "requests",
    "shutil",
    "socket",
    "sqlalchemy",
    "subprocess",
    "threading",
    "time",
    "urllib",
}


def _module(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def imports_of(path: Path, as_module: str | None = None) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line; lazy imports included."""
    module, is_pkg = (as_module, False) if as_module else _module(path)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def test_every_room_has_a_rule() -> None:
    rooms = {_room(_module(p)[0]) for p in _sources()} - {"(package)"}
    assert rooms == set(ALLOWED), "a room was added or removed: give it a line in ALLOWED"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layout(path: Path) -> None:
    room = _room(_module(path)[0])
    allowed = ALLOWED.get(room, set()) | {room}
    wrong = [
        f"{path.relative_to(SRC)}:{line} imports {target}"
        for line, target in imports_of(path)
        if target.startswith("campus_factory.") and _room(target) not in allowed
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", sorted((SRC / "planner").rglob("*.py")), ids=lambda p: p.name)
def test_the_planner_touches_no_io_and_reads_no_clock(path: Path) -> None:
    wrong = [
        f"planner/{path.name}:{line} imports {target}"
        for line, target in imports_of(path)
        if target.split(".")[0] in PLANNER_FORBIDDEN
    ]
    assert not wrong, "\n".join(wrong)


def test_the_rules_catch_a_wrong_import(tmp_path: Path) -> None:
    """The reader itself: a planner module importing the ledger and the clock is seen."""
    fake = tmp_path / "probe.py"
    fake.write_text("def f():\n    from ..ledger import Ledger\nfrom ..demand.base import DemandSource\nimport time\n")
    targets = sorted(t for _, t in imports_of(fake, as_module="campus_factory.planner.probe"))
    assert targets == ["campus_factory.demand.base", "campus_factory.ledger", "time"]
    assert {_room(t) for t in targets[:2]} - ALLOWED["planner"] == {"ledger", "demand"}
    assert "time" in PLANNER_FORBIDDEN
