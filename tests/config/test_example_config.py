"""examples/campus.toml shows every key of the schema (commented out where it has no example)."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel

from campus_factory.config import Config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campus.toml"


def keys(model: type[BaseModel]) -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        out.add(name)
        for candidate in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out |= keys(candidate)
    return out


def test_every_key_appears_in_the_example() -> None:
    text = EXAMPLE.read_text()
    missing = sorted(k for k in keys(Config) if k not in text)
    assert not missing, f"examples/campus.toml does not show: {missing}"
