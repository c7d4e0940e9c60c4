"""The docs' way to mark a non-cloud site as cloud (docs/routes.md, docs/providers/local.md) works:
each page's TOML snippet, with a cloud-only and a no-cloud job group, through `plan explain`."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from campus_factory.cli.main import cli
from campus_factory.config import parse_config
from campus_factory.pilot.glidein import GlideinSpec, glidein_payload
from campus_factory.planner.inputs import slot_policy

ROOT = Path(__file__).resolve().parents[2]


def snippet(doc: str) -> str:
    """The page's TOML block that sets IsCloudNode in slot.attributes."""
    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S)
    (block,) = [b for b in blocks if "IsCloudNode = true" in b]
    return block


@pytest.mark.parametrize("doc", ["routes.md", "providers/local.md"])
def test_a_site_marked_as_cloud_takes_cloud_only_jobs(doc: str, tmp_path: Path) -> None:
    block = snippet(doc)
    site = tomllib.loads(block)["sites"][0]
    assert site["provider"] not in ("ec2", "openstack", "libcloud", "kubernetes")
    assert ("IsCloudNode", "true") in slot_policy(parse_config({"sites": [site]}).sites[0]).attributes
    demand = tmp_path / "demand.json"
    groups = [
        {"id": "cloudy", "count": 1, "cpus": 1, "memory_mb": 100, "requirements": "(TARGET.IsCloudNode =?= True)"},
        {"id": "earthly", "count": 1, "cpus": 1, "memory_mb": 100, "requirements": "(TARGET.IsCloudNode =!= True)"},
    ]
    demand.write_text(json.dumps({"groups": groups}))
    config = tmp_path / "campus.toml"
    config.write_text(f'[factory]\nledger_url = "sqlite:///{tmp_path}/l.sqlite"\n{block}')
    result = CliRunner().invoke(cli, ["-c", str(config), "plan", "explain", "--json", "--demand-file", str(demand)])
    assert result.exit_code == 0, result.output
    match = {g["group"]: {s["site"]: s["match"] for s in g["sites"]} for g in json.loads(result.output)}
    assert match == {"cloudy": {site["name"]: "yes"}, "earthly": {site["name"]: "no: job Requirements"}}


@pytest.mark.parametrize("doc", ["routes.md", "providers/local.md"])
def test_the_glidein_of_a_site_marked_as_cloud_advertises_it(doc: str) -> None:
    site = parse_config({"sites": tomllib.loads(snippet(doc))["sites"]}).sites[0]
    attributes = dict(slot_policy(site).attributes)
    spec = GlideinSpec("cm.example.edu:9618", site.name, "campus", "tok", 1, 100, attributes=attributes)
    lines = "\n".join(glidein_payload(spec))
    assert "IsCloudNode = true" in lines and "IsCloudNode = False" not in lines


def test_a_cloud_sites_glidein_says_so_and_may_be_overridden() -> None:
    for declared, expected in (({}, "true"), ({"IsCloudNode": False}, "false")):
        cloud = {"name": "c", "provider": "ec2", "slot": {"attributes": declared}, "cloud": {"image": "ami-1"}}
        site = parse_config({"sites": [cloud]}).sites[0]
        spec = GlideinSpec(
            "cm.example.edu:9618",
            "c",
            "campus",
            "tok",
            1,
            100,
            is_cloud=True,
            attributes=dict(slot_policy(site).attributes),
        )
        lines = [ln for ln in glidein_payload(spec) if ln.startswith("IsCloudNode")]
        assert lines == [f"IsCloudNode = {expected}"], lines
