"""What this host has: batch schedulers that answer, and the HTCondor pool it belongs to.

Used by ``campus-factory init``. Every command runs through the injected
:class:`~campus_factory.transport.executor.Executor` with a timeout; a command that is missing,
fails or hangs makes its probe say so and never raises. The parsers are pure functions.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CommandError
from ..transport.executor import CommandResult, Executor

__all__ = [
    "BATCH_COMMANDS",
    "HostProbe",
    "PoolProbe",
    "QueueInfo",
    "SchedulerProbe",
    "locate_schedds",
    "parse_lsid",
    "parse_qconf_sql",
    "parse_qstat_queues",
    "parse_scontrol_cluster",
    "parse_sinfo",
    "probe_host",
    "probe_pool",
    "probe_schedulers",
]

#: provider -> the submit command whose presence suggests it
BATCH_COMMANDS = {"slurm": "sbatch", "pbs": "qsub", "sge": "qsub", "lsf": "bsub"}

Which = Callable[[str], str | None]


@dataclass(frozen=True)
class QueueInfo:
    """A partition or queue, with the smallest node it offers when the scheduler says."""

    name: str
    default: bool = False
    cpus: int | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class SchedulerProbe:
    """One batch system: whether its submit command exists and whether it answered."""

    provider: str
    command: str
    path: str | None
    answered: bool
    detail: str
    queues: tuple[QueueInfo, ...] = ()
    cluster: str | None = None
    flavor: str | None = None

    @property
    def default_queue(self) -> QueueInfo | None:
        marked = [q for q in self.queues if q.default]
        if marked:
            return marked[0]
        return self.queues[0] if len(self.queues) == 1 else None


@dataclass(frozen=True)
class PoolProbe:
    """The HTCondor pool: its collector, where that came from, and the schedds it lists."""

    collector: str | None
    source: str
    reachable: bool = False
    schedds: tuple[str, ...] = ()
    detail: str = ""
    config_dir: str | None = None
    condor_prefix: str | None = None
    token_command: str | None = None
    condor_config: str | None = None


@dataclass(frozen=True)
class HostProbe:
    schedulers: tuple[SchedulerProbe, ...]
    pool: PoolProbe
    environment: Mapping[str, str] = field(default_factory=dict)

    def answering(self) -> list[SchedulerProbe]:
        return [s for s in self.schedulers if s.answered]


# -- pure parsers ------------------------------------------------------------------------------
def _leading_int(text: str) -> int | None:
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else None


def _smaller(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def parse_sinfo(stdout: str) -> list[QueueInfo]:
    """``sinfo -h -o '%P|%c|%m'``: one line per partition and node shape; keeps the smallest node."""
    found: dict[str, QueueInfo] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        default = parts[0].endswith("*")
        name = parts[0].rstrip("*")
        cpus, mem = _leading_int(parts[1]), _leading_int(parts[2])
        old = found.get(name)
        if old is not None:
            cpus, mem, default = _smaller(cpus, old.cpus), _smaller(mem, old.memory_mb), default or old.default
        found[name] = QueueInfo(name, default, cpus, mem)
    return list(found.values())


def parse_scontrol_cluster(stdout: str) -> str | None:
    m = re.search(r"^\s*ClusterName\s*=\s*(\S+)", stdout, re.MULTILINE)
    return m.group(1) if m else None


def parse_qconf_sql(stdout: str) -> list[QueueInfo]:
    """``qconf -sql``: one queue name a line; ``all.q`` is the usual default."""
    names = [line.strip() for line in stdout.splitlines() if line.strip()]
    return [QueueInfo(n, default=(n == "all.q")) for n in names]


def parse_qstat_queues(stdout: str) -> list[QueueInfo]:
    """``qstat -Q``: a header, a dashed line, then one queue a line (its name first)."""
    out = []
    for line in stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if not word or word.startswith("-") or word.lower() in ("queue", "name"):
            continue
        out.append(QueueInfo(word))
    return out


def parse_lsid(stdout: str) -> str | None:
    m = re.search(r"My cluster name is (\S+)", stdout)
    return m.group(1) if m else None


# -- probing -----------------------------------------------------------------------------------
async def _run(executor: Executor, argv: Sequence[str], timeout: float) -> CommandResult | str:
    """The result, or a one-line reason it could not run."""
    try:
        return await executor.run(argv, timeout=timeout)
    except CommandError as exc:
        return str(exc)


def _why(result: CommandResult | str) -> str:
    if isinstance(result, str):
        return result
    text = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return f"{result.argv[0]} exited {result.returncode}" + (f": {text[-1][:300]}" if text else "")


async def _slurm(executor: Executor, path: str, timeout: float) -> SchedulerProbe:
    result = await _run(executor, ["sinfo", "-h", "-o", "%P|%c|%m"], timeout)
    if isinstance(result, str) or not result.ok:
        return SchedulerProbe("slurm", "sbatch", path, False, f"sinfo did not answer: {_why(result)}")
    queues = tuple(parse_sinfo(result.stdout))
    conf = await _run(executor, ["scontrol", "show", "config"], timeout)
    cluster = parse_scontrol_cluster(conf.stdout) if isinstance(conf, CommandResult) and conf.ok else None
    detail = f"sinfo answered: {len(queues)} partition(s)" + (f", cluster {cluster}" if cluster else "")
    return SchedulerProbe("slurm", "sbatch", path, True, detail, queues, cluster)


async def _sge(executor: Executor, path: str, timeout: float) -> SchedulerProbe:
    result = await _run(executor, ["qconf", "-sql"], timeout)
    if isinstance(result, str) or not result.ok:
        return SchedulerProbe("sge", "qsub", path, False, f"qconf -sql did not answer: {_why(result)}")
    queues = tuple(parse_qconf_sql(result.stdout))
    return SchedulerProbe("sge", "qsub", path, True, f"qconf answered: {len(queues)} queue(s)", queues)


def _pbs_flavor(qsub: str) -> str:
    """Slurm's PBS wrappers are Perl scripts that mention Slurm; otherwise assume PBS Pro."""
    try:
        head = Path(qsub).read_bytes()[:4096]
    except OSError:
        return "pbspro"
    if b"Slurm" in head or b"slurm" in head:
        return "slurm"
    return "torque" if b"torque" in head.lower() else "pbspro"


async def _pbs(executor: Executor, path: str, timeout: float) -> SchedulerProbe:
    flavor = _pbs_flavor(path)
    qstat = str(Path(path).with_name("qstat"))
    result = await _run(executor, [qstat, "-Q"], timeout)
    if isinstance(result, str) or not result.ok:
        return SchedulerProbe("pbs", "qsub", path, False, f"qstat -Q did not answer: {_why(result)}", flavor=flavor)
    queues = tuple(parse_qstat_queues(result.stdout))
    return SchedulerProbe(
        "pbs", "qsub", path, True, f"qstat -Q answered: {len(queues)} queue(s)", queues, flavor=flavor
    )


async def _lsf(executor: Executor, path: str, timeout: float) -> SchedulerProbe:
    result = await _run(executor, ["lsid"], timeout)
    if isinstance(result, str) or not result.ok:
        return SchedulerProbe("lsf", "bsub", path, False, f"lsid did not answer: {_why(result)}")
    cluster = parse_lsid(result.stdout)
    return SchedulerProbe("lsf", "bsub", path, True, f"lsid answered: cluster {cluster or '?'}", cluster=cluster)


def _is_sge_qsub(path: str) -> bool:
    return "gridengine" in os.path.realpath(path)


def _sge_qsub(qsub: str | None, qconf: str | None) -> str | None:
    """Grid Engine's qsub: the one on PATH when it is Debian's gridengine wrapper or qconf is there
    too, but never Slurm's PBS wrapper (a Perl script that names Slurm); else the qsub beside qconf."""
    if qsub and _pbs_flavor(qsub) != "slurm" and (qconf or _is_sge_qsub(qsub)):
        return qsub
    sibling = Path(qconf).with_name("qsub") if qconf else None
    if sibling is not None and sibling.exists() and _pbs_flavor(str(sibling)) != "slurm":
        return str(sibling)
    return None


async def probe_schedulers(
    executor: Executor, *, timeout: float = 10.0, which: Which = shutil.which, pbs_bin_dir: str | None = None
) -> list[SchedulerProbe]:
    """Each batch system whose submit command is on PATH, and whether it answered a query.

    ``qsub`` belongs to Grid Engine when ``qconf`` is there too (or it is Debian's gridengine
    wrapper) and it is not Slurm's PBS wrapper, else to PBS; ``pbs_bin_dir`` adds PBS commands
    kept off PATH (Slurm's wrappers).
    """
    jobs: list[Any] = []
    sbatch, qsub, bsub, qconf = which("sbatch"), which("qsub"), which("bsub"), which("qconf")
    if sbatch:
        jobs.append(_slurm(executor, sbatch, timeout))
    sge_qsub = _sge_qsub(qsub, qconf)
    if qconf or sge_qsub:
        jobs.append(_sge(executor, sge_qsub or qconf or "qsub", timeout))
    pbs_qsub = str(Path(pbs_bin_dir) / "qsub") if pbs_bin_dir else (qsub if qsub and qsub != sge_qsub else None)
    if pbs_qsub and (pbs_bin_dir is None or Path(pbs_qsub).exists()):
        jobs.append(_pbs(executor, pbs_qsub, timeout))
    if bsub:
        jobs.append(_lsf(executor, bsub, timeout))
    return list(await asyncio.gather(*jobs))


async def _in_thread(fn: Callable[[], Any], timeout: float) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(fn), timeout)


async def locate_schedds(collector: str, timeout: float) -> tuple[str, ...]:
    """Names of the schedds the collector knows (``htcondor2``); raises on failure."""

    def query() -> tuple[str, ...]:
        import htcondor2

        ads = htcondor2.Collector(collector).locateAll(htcondor2.DaemonType.Schedd)
        return tuple(sorted(str(a.get("Name", "?")) for a in ads))

    result: tuple[str, ...] = await _in_thread(query, timeout)
    return result


async def _config_val(executor: Executor, knob: str, timeout: float) -> str | None:
    result = await _run(executor, ["condor_config_val", knob], timeout)
    if isinstance(result, str) or not result.ok:
        return None
    value = result.stdout.strip()
    return value or None


async def probe_pool(
    executor: Executor,
    *,
    collector: str | None = None,
    timeout: float = 10.0,
    which: Which = shutil.which,
    environ: Mapping[str, str] | None = None,
) -> PoolProbe:
    """The pool: ``collector`` if given, else ``condor_config_val COLLECTOR_HOST`` (which reads
    CONDOR_CONFIG); then the schedds it lists, where HTCondor is installed and its config dir."""
    env = os.environ if environ is None else environ
    have_ccv = which("condor_config_val") is not None
    source = "--collector" if collector else "none"
    config_dir = None
    if have_ccv:
        if not collector:
            collector = await _config_val(executor, "COLLECTOR_HOST", timeout)
            source = "condor_config_val COLLECTOR_HOST" if collector else "none"
        config_dir = await _config_val(executor, "LOCAL_CONFIG_DIR", timeout)
    binary = which("condor_master") or which("condor_submit") or which("condor_config_val")
    prefix = str(Path(os.path.realpath(binary)).parent.parent) if binary else None
    token = which("condor_token_create")
    common: dict[str, Any] = {
        "config_dir": config_dir,
        "condor_prefix": prefix,
        "token_command": os.path.realpath(token) if token else None,
        "condor_config": env.get("CONDOR_CONFIG"),
    }
    if not collector:
        why = "no collector given, and no HTCondor configuration found (condor_config_val)"
        return PoolProbe(None, source, detail=why, **common)
    try:
        schedds = await locate_schedds(collector, timeout)
    except TimeoutError:
        return PoolProbe(collector, source, detail=f"no answer from the collector within {timeout:g} s", **common)
    except Exception as exc:  # the bindings raise their own exception types
        return PoolProbe(collector, source, detail=f"the collector did not answer: {exc}", **common)
    detail = f"{len(schedds)} schedd(s): {', '.join(schedds)}" if schedds else "the collector lists no schedd"
    return PoolProbe(collector, source, True, schedds, detail, **common)


async def probe_host(
    executor: Executor,
    *,
    collector: str | None = None,
    timeout: float = 10.0,
    which: Which = shutil.which,
    pbs_bin_dir: str | None = None,
) -> HostProbe:
    """Schedulers and pool together, probed concurrently."""
    schedulers, pool = await asyncio.gather(
        probe_schedulers(executor, timeout=timeout, which=which, pbs_bin_dir=pbs_bin_dir),
        probe_pool(executor, collector=collector, timeout=timeout, which=which),
    )
    keep = ("SLURM_CONF", "SGE_ROOT", "SGE_CELL", "LSF_ENVDIR")
    return HostProbe(tuple(schedulers), pool, {k: os.environ[k] for k in keep if os.environ.get(k)})
