"""``campus-factory init``: probe this host, ask only what it cannot find, write the configs.

Every question has a flag, so the command also runs unattended: with ``--non-interactive`` a
question that would be asked fails instead, naming the flag that answers it (exit 2).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import tomllib
from pathlib import Path
from typing import Any

import click

from ..admin.initconf import (
    DEFAULT_LEDGER,
    FlockAnswers,
    InitAnswers,
    SiteAnswers,
    is_loopback,
    render_config,
    same_host_knobs,
    site_name,
)
from ..admin.probe import HostProbe, SchedulerProbe, locate_schedds, probe_host
from ..config import Config, parse_config
from ..pilot.poolconfig import FLOCK_SCHEDD_AUTHZ, central_manager_config, schedd_config
from ..transport.executor import LocalExecutor
from .pool_cmd import FILES
from .render import render_json

__all__ = ["init", "init_result", "resolve_answers"]

PROVIDERS = ("slurm", "pbs", "sge", "lsf", "local")
_ENV_KEYS = {"slurm": ("SLURM_CONF",), "sge": ("SGE_ROOT", "SGE_CELL"), "lsf": ("LSF_ENVDIR",)}


class _Asker:
    """click prompts, or a usage error naming the flag when prompting is not allowed."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def ask(self, text: str, flag: str, why: str, default: Any = None, type: Any = None) -> Any:
        if not self.interactive:
            raise click.UsageError(f"{why}: pass {flag} (running with --non-interactive, so init cannot ask)")
        click.echo(f"{why}.", err=True)
        return click.prompt(f"{text} [{flag}]", default=default, type=type, err=True)


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _site_answers(
    probe: SchedulerProbe | None,
    provider: str,
    opts: dict[str, Any],
    env: dict[str, str],
    asker: _Asker | None,
) -> SiteAnswers:
    """A site from a probed scheduler (``asker`` None: never ask, leave unknowns at defaults)."""
    queue = None
    partition = opts.get("partition") if asker else None
    if probe is not None:
        queue = next((q for q in probe.queues if q.name == partition), None) if partition else probe.default_queue
        partition = partition or (queue.name if queue else None)
    if provider == "slurm" and partition is None and probe is not None and len(probe.queues) > 1 and asker:
        names = [q.name for q in probe.queues]
        partition = asker.ask(
            "Partition", "--partition", f"Slurm has no default partition ({', '.join(names)})", type=click.Choice(names)
        )
        queue = next(q for q in probe.queues if q.name == partition)
    cpus, memory = (opts.get("cpus"), opts.get("memory_mb")) if asker else (None, None)
    note = ""
    if provider == "local":
        cpus, memory = cpus or os.cpu_count() or 1, memory or max(512, (_memory_mb() or 4096) // 2)
    elif queue is not None and (cpus is None or memory is None):
        if queue.cpus and queue.memory_mb:
            note = f"Found: the smallest node of {queue.name} has {queue.cpus} cores and {queue.memory_mb} MB."
        cpus, memory = cpus or queue.cpus, memory or queue.memory_mb
    what = f"{provider} does not say how big its nodes are"
    if cpus is None:
        cpus = asker.ask("Cores per pilot", "--cpus", what, default=1, type=click.IntRange(1)) if asker else 1
    if memory is None:
        memory = (
            asker.ask("Memory per pilot (MB)", "--memory-mb", what, default=2048, type=click.IntRange(1))
            if asker
            else 2048
        )
    cluster = probe.cluster if probe else None
    name = (opts.get("site_name") if asker else None) or site_name(cluster or provider, provider)
    return SiteAnswers(
        name=name,
        provider=provider,
        cpus=int(cpus),
        memory_mb=int(memory),
        partition=partition,
        work_dir=opts["work_dir"],
        max_pilots=opts.get("max_pilots") or (1 if provider == "local" else 10),
        environment={k: env[k] for k in _ENV_KEYS.get(provider, ()) if k in env},
        bin_dir=opts.get("pbs_bin_dir") if provider == "pbs" else None,
        pbs_flavor=probe.flavor if probe and provider == "pbs" else None,
        note=note,
    )


def _choose_provider(host: HostProbe, opts: dict[str, Any], asker: _Asker) -> tuple[str, SchedulerProbe | None]:
    answering = host.answering()
    provider = opts.get("provider")
    if provider is None and answering:
        provider = answering[0].provider
        if len(answering) > 1 and asker.interactive:
            names = [s.provider for s in answering]
            provider = click.prompt(
                "Several batch systems answered; which one should the first site use [--provider]",
                type=click.Choice(names),
                default=provider,
                err=True,
            )
    if provider is None:
        seen = "; ".join(f"{s.command}: {s.detail}" for s in host.schedulers) or "none of sbatch/qsub/bsub is on PATH"
        provider = asker.ask(
            "Kind of site", "--provider", f"No batch system answered ({seen})", type=click.Choice(PROVIDERS)
        )
    probe = next((s for s in host.schedulers if s.provider == provider), None)
    return provider, probe


def _flock_answers(opts: dict[str, Any], found: tuple[str, ...] | str, asker: _Asker) -> FlockAnswers | None:
    """The campus pool that flocks here (``--flock-from-collector``); ``found``: the schedds its
    collector lists, or why it could not be asked."""
    collector = opts.get("flock_from_collector")
    if not collector:
        return None
    listed = found if isinstance(found, tuple) else ()
    schedds = tuple(opts.get("flock_schedds") or ()) or listed
    if not schedds:
        why = f"did not answer ({found})" if isinstance(found, str) else "lists no schedd"
        schedds = (asker.ask("Campus schedd", "--flock-schedd", f"the campus collector {collector} {why}"),)
    return FlockAnswers(opts.get("campus_name") or "campus", collector, schedds, listed)


def resolve_answers(
    host: HostProbe, opts: dict[str, Any], *, interactive: bool, campus: tuple[str, ...] | str = ()
) -> InitAnswers:
    """Merge flags and probe findings; ask (or fail naming the flag) for what is missing.

    ``campus``: the schedds the campus collector (``--flock-from-collector``) lists, or why it
    could not be asked.
    """
    asker = _Asker(interactive)
    pool = host.pool
    collector = opts.get("collector") or pool.collector
    if not collector:
        collector = asker.ask("Collector (host:port)", "--collector", f"The pool was not found ({pool.detail})")
    provider, probe = _choose_provider(host, opts, asker)
    env = dict(host.environment)
    site = _site_answers(probe, provider, opts, env, asker)
    others = tuple(_site_answers(s, s.provider, opts, env, None) for s in host.answering() if s.provider != provider)
    payload = opts["payload"]
    token = opts.get("token_command") or pool.token_command or "condor_token_create"
    locations = tuple(opts.get("condor_locations") or ())
    if not locations:
        locations = ("/usr",) + ((pool.condor_prefix,) if pool.condor_prefix and pool.condor_prefix != "/usr" else ())
    if opts.get("collector") or pool.collector:
        found = [f"pool: collector {collector} ({pool.source}): {pool.detail}"]
    else:
        found = [f"pool: collector {collector} (entered at the prompt; not probed)"]
    found += [f"{s.provider}: {s.command} at {s.path}: {s.detail}" for s in host.schedulers]
    if not host.schedulers:
        found.append("no batch system: none of sbatch, qsub, bsub is on PATH")
    if pool.condor_prefix:
        found.append(f"HTCondor installed under {pool.condor_prefix}")
    flock = _flock_answers(opts, campus, asker)
    if flock is not None:
        listed = (
            ", ".join(flock.found)
            if flock.found
            else f"no schedd ({campus})"
            if isinstance(campus, str)
            else "no schedd"
        )
        found.append(f"campus pool {flock.name}: collector {flock.collector} lists {listed}")
    return InitAnswers(
        collector=collector,
        site=site,
        factory_name=opts["factory_name"],
        ledger_url=opts["ledger_url"],
        payload=payload,
        token_command=(token,),
        token_environment={"CONDOR_CONFIG": pool.condor_config} if pool.condor_config else {},
        condor_locations=locations,
        extra_config=same_host_knobs(os.geteuid() == 0) if payload == "glidein" and is_loopback(collector) else {},
        found=tuple(found),
        schedds=pool.schedds,
        other_sites=others,
        flock=flock,
    )


def _install_plan(cfg: Config, host: HostProbe, out: Path, written: dict[str, Path]) -> list[dict[str, str]]:
    cm = cfg.pool.collector.rsplit(":", 1)[0]
    schedds = ", ".join(host.pool.schedds) or "every schedd users submit to"

    def target(key: str) -> str:
        if host.pool.config_dir:
            return f"copy it to {host.pool.config_dir}/{FILES[key]}"
        if host.pool.condor_config:  # e.g. a personal pool: one file, no LOCAL_CONFIG_DIR
            return f"append it to {host.pool.condor_config} (this pool has no LOCAL_CONFIG_DIR)"
        return f"copy it to /etc/condor/config.d/{FILES[key]}"

    final = Path("/etc/campus-factory/campus.toml")
    here = "already in place" if (out / "campus.toml").resolve() == final else f"copy it to {final}"
    if cfg.pool.flock_from:  # the schedd file is for the campus submit hosts, with a token from here
        src = cfg.pool.flock_from[0]
        mint = f"condor_token_create -identity {src.schedd_id} " + " ".join(f"-authz {a}" for a in FLOCK_SCHEDD_AUTHZ)
        return [
            {
                "file": str(written["central_manager"]),
                "install_as": target("central_manager"),
                "on": f"this pool's central manager ({cm})",
            },
            {
                "file": str(written["schedd"]),
                "install_as": f"copy it to /etc/condor/config.d/{FILES['schedd']}",
                "on": f"the campus submit hosts ({', '.join(src.schedds)})",
            },
            {
                "file": f"the token of `{mint}` (run on {cm})",
                "install_as": f"copy it to /etc/condor/tokens.d/flock-{src.name} (mode 600)",
                "on": f"the campus submit hosts ({', '.join(src.schedds)})",
            },
            {"file": str(out / "campus.toml"), "install_as": here, "on": "this host"},
        ]
    return [
        {
            "file": str(written["central_manager"]),
            "install_as": target("central_manager"),
            "on": f"the central manager ({cm})",
        },
        {"file": str(written["schedd"]), "install_as": target("schedd"), "on": f"submit hosts ({schedds})"},
        {"file": str(out / "campus.toml"), "install_as": here, "on": "this host"},
    ]


def init_result(host: HostProbe, answers: InitAnswers, out: Path, *, strict: bool, force: bool) -> dict[str, Any]:
    """Write campus.toml and the pool-side files under ``out``; the data the command prints."""
    text = render_config(answers, generated_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    config_path = out / "campus.toml"
    cfg = parse_config(tomllib.loads(text), str(config_path))  # what `config check` will say
    flocking = bool(cfg.pool.flock_from)
    hosts = [s.rpartition("@")[2] or s for src in cfg.pool.flock_from for s in src.schedds]
    condor = {
        "central_manager": (
            out / "condor" / FILES["central_manager"],
            central_manager_config(cfg, strict=strict, flock_from=hosts),
        ),
        "schedd": (out / "condor" / FILES["schedd"], schedd_config(cfg, flock_to=flocking)),
    }
    targets = [config_path] + [p for p, _ in condor.values()]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise click.UsageError(f"{', '.join(existing)} already exist(s): pass --force to overwrite")
    (out / "condor").mkdir(parents=True, exist_ok=True)
    config_path.write_text(text, encoding="utf-8")
    for path, body in condor.values():
        path.write_text(body, encoding="utf-8")
    written = {k: p for k, (p, _) in condor.items()}
    return {
        "found": list(answers.found),
        "config": str(config_path),
        "config_check": f"OK: {len(cfg.sites)} site(s), factory {cfg.factory.name!r}",
        "site": {"name": answers.site.name, "provider": answers.site.provider, "partition": answers.site.partition},
        "install": _install_plan(cfg, host, out, written),
        "reload": "condor_reconfig",
        "next": [
            f"campus-factory -c {config_path} config check",
            f"campus-factory -c {config_path} doctor",
            f"campus-factory -c {config_path} factory run --once --dry-run",
            f"campus-factory -c {config_path} factory run",
        ],
    }


def _print(result: dict[str, Any]) -> None:
    click.echo("Found on this host:")
    for line in result["found"]:
        click.echo(f"  {line}")
    click.echo(f"\nWrote {result['config']} ({result['config_check']}).")
    click.echo("\nInstall these files:")
    for i, step in enumerate(result["install"], 1):
        click.echo(f"  {i}. on {step['on']}: {step['file']}\n     {step['install_as']}")
    click.echo(
        f"\nThen reload HTCondor on the central manager and on each submit host: `{result['reload']}` "
        "(as root, on each host; a personal pool: the same command with its CONDOR_CONFIG)."
    )
    click.echo("\nNext:")
    for line in result["next"]:
        click.echo(f"  {line}")


@click.command("init")
@click.option(
    "--collector", metavar="HOST:PORT", help="The pool's collector (default: condor_config_val COLLECTOR_HOST)."
)
@click.option(
    "--provider", type=click.Choice(PROVIDERS), help="Kind of the first site (default: the batch system found)."
)
@click.option("--site-name", help="Name of the first site (default: the cluster's name).")
@click.option("--partition", help="Partition or queue of the pilots (default: the scheduler's default).")
@click.option("--cpus", type=click.IntRange(1), help="Cores per pilot (default: the partition's smallest node).")
@click.option("--memory-mb", type=click.IntRange(1), help="Memory per pilot in MB (default: the smallest node's).")
@click.option("--max-pilots", type=click.IntRange(1), help="Pilots alive at once (default: 10; local sites: 1).")
@click.option("--work-dir", default="/tmp/campus-factory", show_default=True, help="Pilot log directory on the site.")
@click.option("--pbs-bin-dir", help="Directory of PBS commands kept off PATH (e.g. /opt/slurm-torque/usr/bin).")
@click.option("--factory-name", default="campus", show_default=True, help="Tag of this factory's pilots.")
@click.option("--ledger-url", default=DEFAULT_LEDGER, show_default=True, help="SQLAlchemy URL of the ledger.")
@click.option(
    "--payload",
    type=click.Choice(["glidein", "command"]),
    default="glidein",
    show_default=True,
    help="What a pilot runs (pilot.payload): glidein, an HTCondor startd that joins the pool; or command, "
    "pilot.command (default `sleep infinity`) until told to leave: a smoke test of a site, no pool needed.",
)
@click.option("--token-command", help="The token minting command (default: condor_token_create found on PATH).")
@click.option("--condor-location", "condor_locations", multiple=True, help="HTCondor prefix on workers (repeat).")
@click.option("--strict", is_flag=True, help="Pool side: pilots are the pool's only startds (IDTOKENS only).")
@click.option(
    "--flock-from-collector",
    metavar="HOST:PORT",
    help="Collector of a campus pool whose schedds flock to this pool (the factory-pool topology).",
)
@click.option(
    "--flock-schedd",
    "flock_schedds",
    multiple=True,
    metavar="NAME",
    help="A campus schedd that flocks here (repeat; default: every schedd that collector lists).",
)
@click.option("--campus-name", default="campus", show_default=True, help="Label of that campus pool.")
@click.option("--output-dir", default=".", show_default=True, type=click.Path(file_okay=False), help="Write here.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--non-interactive", is_flag=True, help="Never ask: fail naming the flag a question needs.")
@click.option("--timeout", type=click.FloatRange(0.5), default=10.0, show_default=True, help="Timeout of each probe.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def init(
    non_interactive: bool, timeout: float, as_json: bool, strict: bool, force: bool, output_dir: str, **opts: Any
) -> None:
    """Probe this host and write a first config and the pool-side HTCondor config.

    \b
    Finds: sbatch / qsub / bsub that answer (sinfo, qconf -sql, qstat -Q, lsid), the pool
    (--collector, or condor_config_val COLLECTOR_HOST from CONDOR_CONFIG), the schedds the
    collector lists, and where HTCondor and condor_token_create are installed. It asks only
    what it cannot find; every question has a flag. Then it says which file to install where.

    With --flock-from-collector the pool is a factory pool that a campus pool's schedds flock to:
    the config names them (pool.flock_from), the central manager file allows their token
    identity, and the schedd file (FLOCK_TO) goes to the campus submit hosts.
    """
    if opts.get("site_name") and not re.match(r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$", opts["site_name"]):
        raise click.BadParameter("letters, digits, '_', '.', '-', starting with a letter", param_hint="--site-name")
    host = asyncio.run(
        probe_host(
            LocalExecutor(), collector=opts.get("collector"), timeout=timeout, pbs_bin_dir=opts.get("pbs_bin_dir")
        )
    )
    campus: tuple[str, ...] | str = ()
    if opts.get("flock_from_collector"):
        try:
            campus = asyncio.run(locate_schedds(opts["flock_from_collector"], timeout))
        except Exception as exc:  # the bindings raise their own types; a timeout too
            campus = str(exc) or type(exc).__name__
    answers = resolve_answers(host, opts, interactive=not non_interactive, campus=campus)
    result = init_result(host, answers, Path(output_dir), strict=strict, force=force)
    if as_json:
        click.echo(render_json(result))
    else:
        _print(result)
