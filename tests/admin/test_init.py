"""`campus-factory init`: probing, asking only what is missing, and a config that passes `config check`."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campus_factory.admin.initconf import (
    InitAnswers,
    SiteAnswers,
    is_loopback,
    render_config,
    same_host_knobs,
    site_name,
)
from campus_factory.admin.probe import (
    parse_lsid,
    parse_qconf_sql,
    parse_qstat_queues,
    parse_scontrol_cluster,
    parse_sinfo,
)
from campus_factory.cli.main import cli
from campus_factory.config import load_config, parse_config


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def fake_bin(tmp_path: Path, scripts: dict[str, str]) -> Path:
    """A directory of fake commands; PATH is set to it alone, so nothing real is found."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
    return bin_dir


# -- pure parts -----------------------------------------------------------------------------------
def test_parsers() -> None:
    queues = parse_sinfo("debug*|4|4000\nbig|16|64000\nbig|8+|32000+\n\n")
    assert [(q.name, q.default, q.cpus, q.memory_mb) for q in queues] == [
        ("debug", True, 4, 4000),
        ("big", False, 8, 32000),
    ]
    assert parse_scontrol_cluster("Foo = 1\nClusterName             = cftest\n") == "cftest"
    assert [q.name for q in parse_qconf_sql("all.q\ngpu.q\n") if q.default] == ["all.q"]
    qstat = "Queue              Max   Tot   Ena   Str   Que   Run\n----- --- \nworkq 0 0 yes yes 0 0\n"
    assert [q.name for q in parse_qstat_queues(qstat)] == ["workq"]
    assert parse_lsid("IBM Spectrum LSF 10.1\nMy cluster name is lsf1\nMy master name is m1\n") == "lsf1"


def test_rendered_config_is_valid_and_commented() -> None:
    site = SiteAnswers("alpha", "slurm", 8, 16000, partition="campus", environment={"SLURM_CONF": "/e/s.conf"})
    other = SiteAnswers("sge", "sge", 1, 2048, partition="all.q")
    answers = InitAnswers(
        collector="127.0.0.1:9618",
        site=site,
        ledger_url="sqlite:////tmp/x.sqlite",
        token_environment={"CONDOR_CONFIG": "/etc/condor/condor_config"},
        extra_config=same_host_knobs(True),
        found=("slurm: sbatch answered",),
        other_sites=(other,),
    )
    text = render_config(answers, generated_at="now")
    cfg = parse_config(tomllib.loads(text))
    assert [s.name for s in cfg.sites] == ["alpha"]  # the other site is commented out
    assert '# name = "sge"' in text and "# What init found on this host:" in text
    assert cfg.sites[0].batch.environment == {"SLURM_CONF": "/e/s.conf"}
    assert cfg.pilot.payload == "glidein" and cfg.pilot.extra_config["BASE_CGROUP"] == ""
    assert sum(line.startswith("#") for line in text.splitlines()) > 30


def test_helpers() -> None:
    assert site_name("my cluster!", "slurm") == "my-cluster-"
    assert site_name("9lives", "slurm") == "slurm"
    assert is_loopback("127.0.0.1:9618") and is_loopback("localhost:1") and not is_loopback("cm.example.edu:9618")


# -- the command, on a host with no HTCondor ------------------------------------------------------
def test_fake_pool_without_htcondor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """condor_config_val names a collector that does not answer; no batch system; a local site."""
    bin_dir = fake_bin(tmp_path, {"condor_config_val": '[ "$1" = COLLECTOR_HOST ] && echo 127.0.0.1:9 || exit 1'})
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CONDOR_CONFIG", raising=False)
    out = tmp_path / "out"
    ledger = f"sqlite:///{tmp_path}/ledger.sqlite"
    args = ["init", "--non-interactive", "--output-dir", str(out), "--ledger-url", ledger, "--timeout", "5"]

    r = invoke(*args)  # nothing answers: it cannot choose the kind of site
    assert r.exit_code == 2
    assert "--provider" in r.output and "none of sbatch/qsub/bsub is on PATH" in r.output

    r = invoke(*args, "--provider", "local", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert any("127.0.0.1:9" in line and "did not answer" in line for line in result["found"])
    cfg = load_config(out / "campus.toml")
    assert cfg.pool.collector == "127.0.0.1:9" and cfg.sites[0].provider == "local"
    assert cfg.pilot.token.command == ("condor_token_create",)  # not found: the plain name
    assert "NETWORK_INTERFACE" in cfg.pilot.extra_config  # loopback collector: same-host knobs
    assert invoke("config", "check", str(out / "campus.toml")).exit_code == 0
    installs = {Path(i["file"]).name: i for i in result["install"]}
    assert installs["60-campus-factory.conf"]["install_as"] == "copy it to /etc/condor/config.d/60-campus-factory.conf"
    assert (
        "ALLOW_ADVERTISE_STARTD = $(ALLOW_DAEMON), pilot-*@campus-factory"
        in (out / "condor" / "60-campus-factory.conf").read_text()
    )
    assert (out / "condor" / "61-campus-factory-routes.conf").exists()
    assert result["reload"] == "condor_reconfig"

    r = invoke(*args, "--provider", "local")  # files exist: refuse without --force
    assert r.exit_code == 2 and "--force" in r.output


def test_missing_collector_names_its_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_bin(tmp_path, {})))
    r = invoke("init", "--non-interactive", "--provider", "local", "--output-dir", str(tmp_path))
    assert r.exit_code == 2 and "pass --collector" in r.output


def test_interactive_asks_only_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PBS qsub that answers but says nothing of node sizes: init asks for the collector and the slot."""
    qstat = 'echo "Queue Max"; echo "----- ---"; echo "workq 0"'
    bin_dir = fake_bin(tmp_path, {"qsub": "exit 0", "qstat": qstat})
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "out"
    r = invoke(
        "init",
        "--output-dir",
        str(out),
        "--ledger-url",
        f"sqlite:///{tmp_path}/l.sqlite",
        input="cm.example.edu:9618\n4\n8000\n",
    )
    assert r.exit_code == 0, r.output
    assert "Collector (host:port) [--collector]" in r.output and "[--cpus]" in r.output
    assert "[--partition]" not in r.output and "[--provider]" not in r.output
    cfg = load_config(out / "campus.toml")
    site = cfg.sites[0]
    assert (site.provider, site.batch.partition, site.slot.cpus, site.slot.memory_mb) == ("pbs", "workq", 4, 8000)
    assert site.batch.pbs_flavor == "pbspro" and cfg.pilot.extra_config == {}


# -- against a real Slurm cluster -----------------------------------------------------------------
@pytest.mark.slurm
def test_init_against_real_slurm(slurm_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.conf)
    monkeypatch.delenv("CONDOR_CONFIG", raising=False)
    out = tmp_path / "out"
    r = invoke(
        "init",
        "--non-interactive",
        "--collector",
        "127.0.0.1:9",
        "--payload",
        "command",
        "--output-dir",
        str(out),
        "--ledger-url",
        f"sqlite:///{tmp_path}/ledger.sqlite",
        "--work-dir",
        str(tmp_path / "pilots"),
    )
    assert r.exit_code == 0, r.output
    assert "slurm: sbatch at" in r.output and "sinfo answered" in r.output
    cfg = load_config(out / "campus.toml")
    site = cfg.sites[0]
    assert site.name == slurm_cluster.name and site.provider == "slurm"
    assert site.batch.partition == "debug"  # the cluster's default partition
    assert (site.slot.cpus, site.slot.memory_mb) == (slurm_cluster.node_cpus, 4000)
    assert site.batch.environment == {"SLURM_CONF": slurm_cluster.conf}
    assert invoke("config", "check", str(out / "campus.toml")).exit_code == 0
    # the same config, checked end to end: the site's queue answers, Slurm accepts a pilot job
    r = invoke("-c", str(out / "campus.toml"), "doctor", "--site", site.name, "--json", "--timeout", "20")
    checks = {c["name"]: c for c in json.loads(r.output)}
    assert checks[f"site [{site.name}] queue"]["status"] == "ok", checks
    assert checks[f"site [{site.name}] submit"]["status"] == "ok", checks
    assert checks["collector"]["status"] == "fail" and r.exit_code == 1  # nothing listens on port 9
    assert os.environ["SLURM_CONF"] == slurm_cluster.conf


def test_a_factory_pool_that_a_campus_flocks_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--flock-from-collector: the config names the campus pool, each file goes to its side."""
    monkeypatch.setenv("PATH", str(fake_bin(tmp_path, {})))
    monkeypatch.delenv("CONDOR_CONFIG", raising=False)
    out = tmp_path / "out"
    args = [
        "init",
        "--non-interactive",
        "--collector",
        "127.0.0.1:9",
        "--provider",
        "local",
        "--output-dir",
        str(out),
        "--ledger-url",
        f"sqlite:///{tmp_path}/ledger.sqlite",
        "--timeout",
        "3",
        "--flock-from-collector",
        "127.0.0.1:7",
    ]
    r = invoke(*args)  # the campus collector does not answer: which schedd flocks is a question
    assert r.exit_code == 2 and "--flock-schedd" in r.output and "127.0.0.1:7 did not answer" in r.output

    r = invoke(*args, "--flock-schedd", "submit@campus.example.edu", "--campus-name", "physics", "--strict", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    cfg = load_config(out / "campus.toml")
    (src,) = cfg.pool.flock_from
    assert (src.name, src.collector, src.schedds) == ("physics", "127.0.0.1:7", ("submit@campus.example.edu",))
    cm = (out / "condor" / "60-campus-factory.conf").read_text()
    assert "FLOCK_FROM = $(FLOCK_FROM) campus.example.edu" in cm
    assert "ALLOW_ADVERTISE_SCHEDD = $(ALLOW_DAEMON), flock-physics@campus-factory" in cm
    schedd = (out / "condor" / "61-campus-factory-routes.conf").read_text()
    assert "FLOCK_TO = $(FLOCK_TO) 127.0.0.1:9" in schedd and "negotiator@physics" in schedd
    on = {i["on"] for i in result["install"]}
    assert "the campus submit hosts (submit@campus.example.edu)" in on
    token = next(i for i in result["install"] if "condor_token_create" in i["file"])
    assert "-identity flock-physics@campus-factory -authz ADVERTISE_SCHEDD" in token["file"]
    assert any("campus pool physics: collector 127.0.0.1:7" in line for line in result["found"])
    assert invoke("config", "check", str(out / "campus.toml")).exit_code == 0


def test_slurms_pbs_wrapper_is_not_grid_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qconf on PATH (Grid Engine's client) beside Slurm's PBS wrapper qsub: the wrapper is PBS
    (flavor slurm), and Grid Engine is reported with its own qsub or qconf, never the wrapper."""
    import asyncio

    from campus_factory.admin.probe import probe_schedulers
    from campus_factory.transport.executor import LocalExecutor

    wrapper = "# Slurm's PBS wrapper: use Slurm::Bitstr; exec sbatch\nexit 0"
    qstat = 'echo "Queue Max"; echo "----- ---"; echo "debug 0"'
    bin_dir = fake_bin(tmp_path, {"qsub": wrapper, "qstat": qstat, "qconf": "echo all.q"})
    monkeypatch.setenv("PATH", str(bin_dir))
    probes = {p.provider: p for p in asyncio.run(probe_schedulers(LocalExecutor(), timeout=5))}
    assert probes["pbs"].path == str(bin_dir / "qsub") and probes["pbs"].flavor == "slurm"
    assert probes["sge"].path == str(bin_dir / "qconf")  # no Grid Engine qsub here: not the wrapper
    # a Grid Engine qsub (no mention of Slurm) beside qconf is Grid Engine's, and not PBS
    (bin_dir / "qsub").write_text("#!/bin/sh\n# Grid Engine qsub\nexit 0\n")
    probes = {p.provider: p for p in asyncio.run(probe_schedulers(LocalExecutor(), timeout=5))}
    assert probes["sge"].path == str(bin_dir / "qsub") and "pbs" not in probes
