"""The glidein of a submission: one token, sized as its pilots asked, or none for the command."""

from __future__ import annotations

import asyncio

import pytest
from tests.providers.test_slurm_parsers import ScriptedExecutor

from campus_factory.config import PoolOptions, parse_config
from campus_factory.domain import PilotRequest
from campus_factory.errors import NotSupportedError
from campus_factory.pilot.payload import GlideinBuilder, glidein_for

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwIn0.c2ln"


def setup(sizing: str, payload: str = "glidein") -> tuple:
    cfg = parse_config(
        {
            "pilot": {"payload": payload},
            "sites": [{"name": "hpc", "provider": "slurm", "slot": {"cpus": 16, "memory_mb": 64000, "sizing": sizing}}],
        }
    )
    ex = ScriptedExecutor((["condor_token_create"], (0, TOKEN + "\n", "")))
    return cfg, ex, GlideinBuilder(PoolOptions(collector="cm:9618"), cfg.pilot, ex, "campus")


def test_a_fitted_submission_gets_a_glidein_of_its_size() -> None:
    cfg, ex, builder = setup("fit")
    pilots = [PilotRequest(f"hpc-{i}", 4, 8000, 0, 0, 3600.0) for i in range(3)]
    spec = asyncio.run(glidein_for(cfg.sites[0], cfg.pilot, builder, pilots))
    assert spec is not None and (spec.cpus, spec.memory_mb, spec.token) == (4, 8000, TOKEN)
    assert spec.fill_only  # it runs only jobs that take all its cores
    assert len(ex.calls) == 1


def test_without_requests_the_glidein_has_the_site_slot() -> None:
    cfg, _, builder = setup("fixed")
    spec = asyncio.run(glidein_for(cfg.sites[0], cfg.pilot, builder, []))
    assert spec is not None and (spec.cpus, spec.memory_mb) == (16, 64000) and not spec.fill_only


def test_the_command_payload_mints_nothing_and_a_missing_builder_is_an_error() -> None:
    cfg, ex, builder = setup("fixed", payload="command")
    assert asyncio.run(glidein_for(cfg.sites[0], cfg.pilot, builder, [])) is None
    assert ex.calls == []
    glidein_cfg, _, _ = setup("fixed")
    with pytest.raises(NotSupportedError, match="no glidein builder"):
        asyncio.run(glidein_for(glidein_cfg.sites[0], glidein_cfg.pilot, None, []))


@pytest.mark.parametrize("provider", ["ec2", "openstack", "libcloud"])
def test_fit_sizing_is_refused_where_pilots_are_one_instance_type(provider: str) -> None:
    from campus_factory.errors import ConfigError

    cloud = {"image": "img", "instance_type": "m1", "driver": "ec2"} if provider == "libcloud" else {}
    cloud = cloud or {"image": "img", "instance_type": "m1"}
    site = {"name": "c", "provider": provider, "slot": {"sizing": "fit"}, "cloud": cloud}
    with pytest.raises(ConfigError) as info:
        parse_config({"sites": [site]})
    assert 'use sizing = "fixed"' in str(info.value.problems)
