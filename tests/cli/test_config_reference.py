"""docs/reference/config.md is generated from the schema and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from campus_factory.cli.schema_doc import config_json_schema, config_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_committed_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert committed == config_markdown(), (
        "docs/reference/config.md is out of date: run "
        "`campus-factory config schema --format markdown > docs/reference/config.md`"
    )


def test_reference_names_every_section_and_key() -> None:
    text = config_markdown()
    for heading in ("## `pool`", "## `factory`", "## `pilot`", "## `sites[]`", "## `sites[].limits`"):
        assert heading in text
    assert "| `max_queued` | integer | `5` |" in text
    assert "| `ledger_url` | string |" in text
    assert '"properties"' in config_json_schema()
