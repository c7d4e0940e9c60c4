"""The glidein payload: the part of a pilot's script that turns it into a pool member.

It finds HTCondor on the worker (configured prefixes, a CVMFS path, or a tarball unpacked to
scratch), writes a startd-only configuration into a private scratch directory, installs the
pilot's IDTOKEN (mode 0600), sizes one partitionable slot to the allocation actually granted
(``SLURM_CPUS_ON_NODE``/``PBS_NP``/``NSLOTS``, ``SLURM_MEM_PER_NODE``/``SLURM_MEM_PER_CPU``, the
cgroup limit, else what was requested), advertises the pilot's identity and probed capabilities,
and runs ``condor_master -f``. On TERM the master gets QUIT (jobs are evicted and re-queued, the
ads invalidated: the cleanest path measured); when the master exits the script writes an exit
summary line (``CAMPUS_FACTORY_EXIT {json}``) and a file beside the pilot logs, and removes its
scratch directory.

Values reach the script in two ways only: static configuration inside a quoted heredoc (no shell
expansion; each value checked to hold no line break), and runtime values through shell variables
computed by the script itself.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config._grammar import FACTORY_OWNED_KNOBS
from ..errors import UnsafeValueError

__all__ = ["GlideinSpec", "check_attribute_name", "check_config_value", "glidein_payload"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"[A-Za-z0-9_.=-]+")
_SCRATCH = re.compile(r"[A-Za-z0-9_/.${}:-]+")
_HOSTPORT = re.compile(r"[A-Za-z0-9_.:\[\]-]+(\?[A-Za-z0-9_.=&-]+)?")


def check_attribute_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UnsafeValueError(f"{name!r} is not a valid ClassAd attribute / config knob name")
    return name


def check_config_value(value: str) -> str:
    """A value written into an HTCondor config file: one line, no control characters."""
    if any(ord(c) < 32 and c != "\t" for c in value) or "\x7f" in value:
        raise UnsafeValueError(f"a config value cannot contain line breaks or control characters: {value!r}")
    if value.rstrip().endswith("\\"):
        raise UnsafeValueError(f"a config value cannot end with a backslash (line continuation): {value!r}")
    if "CF_CONFIG_EOF" in value or "CF_TOKEN_EOF" in value:
        raise UnsafeValueError("a config value cannot contain the heredoc delimiters")
    return value


def _classad_string(text: str) -> str:
    """A ClassAd string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class GlideinSpec:
    """Everything a glidein needs; built by the factory from config, site and pool."""

    collector: str
    site: str
    factory: str
    token: str
    cpus: int
    memory_mb: int
    gpus: int = 0
    walltime_s: int = 4 * 3600
    idle_timeout_s: int = 600
    retire_margin_s: int = 300
    update_interval_s: int = 60
    is_cloud: bool = False
    start: str = "True"
    fill_only: bool = False  # only jobs that take every core of the pilot (sites sizing pilots to demand)
    attributes: Mapping[str, str] = field(default_factory=dict)
    condor_locations: Sequence[str] = ("/usr",)
    tarball: str | None = None
    cvmfs_repositories: Sequence[str] = ()
    ccb: bool = False
    extra_config: Mapping[str, str] = field(default_factory=dict)
    scratch: str = "${TMPDIR:-/tmp}"
    summary_dir: str = ""


def _static_config(spec: GlideinSpec) -> list[str]:
    if not _HOSTPORT.fullmatch(spec.collector):
        raise UnsafeValueError(f"invalid collector address {spec.collector!r}")
    attrs = {
        "CampusFactorySite": _classad_string(spec.site),
        "CampusFactoryName": _classad_string(spec.factory),
        "IsCloudNode": "True" if spec.is_cloud else "False",
    }
    # IsCloudNode is only a default (by provider): the site's slot ad may declare it (routes.md)
    own = {"campusfactorysite", "campusfactoryname", "start", "requirements", "cf_site_start"}
    for name, expr in spec.attributes.items():
        if check_attribute_name(name).lower() in own:
            raise UnsafeValueError(f"slot attribute {name!r} is set by the factory itself")
        attrs["IsCloudNode" if name.lower() == "iscloudnode" else name] = check_config_value(expr)
    # a pilot sized for one job runs only jobs that take the cores it asked for (the requested
    # size, not TotalSlotCpus: a scheduler may grant more, e.g. a whole core of two threads)
    fill = f" && (TARGET.RequestCpus >= {int(spec.cpus)})" if spec.fill_only else ""
    lines = [
        "# campus-factory glidein: startd-only configuration",
        f"COLLECTOR_HOST = {spec.collector}",
        "DAEMON_LIST = MASTER STARTD",
        "SEC_DEFAULT_AUTHENTICATION = REQUIRED",
        "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS, FS",
        "SEC_DEFAULT_AUTHENTICATION_METHODS = FS, IDTOKENS",
        "SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/tokens.d",
        "SEC_USE_FAMILY_SESSION = False",
        "ALLOW_WRITE = $(ALLOW_DAEMON)",
        "ALLOW_ADMINISTRATOR = $(ALLOW_DAEMON)",
        "LOG = $(LOCAL_DIR)/log",
        "SPOOL = $(LOCAL_DIR)/spool",
        "EXECUTE = $(LOCAL_DIR)/execute",
        "LOCK = $(LOCAL_DIR)/lock",
        "RUN = $(LOCAL_DIR)/run",
        "NUM_SLOTS_TYPE_1 = 1",
        "SLOT_TYPE_1 = 100%",
        "SLOT_TYPE_1_PARTITIONABLE = True",
        f"STARTD_NOCLAIM_SHUTDOWN = {int(spec.idle_timeout_s)}",
        f"UPDATE_INTERVAL = {int(spec.update_interval_s)}",
        f"STARTER_UPDATE_INTERVAL = {max(5, min(300, int(spec.update_interval_s)))}",
        f"CampusFactoryRetireMargin = {int(spec.retire_margin_s)}",
        f"CF_SITE_START = ({check_config_value(spec.start)})",
        # no new job once less than retire_margin of the walltime is left
        f"START = $(CF_SITE_START) && (time() < MY.CampusFactoryPilotEnd - {int(spec.retire_margin_s)}){fill}",
    ]
    if spec.ccb:
        lines.append("CCB_ADDRESS = $(COLLECTOR_HOST)")
    if spec.gpus > 0:
        lines.append("use feature : GPUs")
    lines += [f"{n} = {v}" for n, v in attrs.items()]
    names = [
        *attrs,
        "CampusFactoryPilotId",
        "CampusFactoryPilotEnd",
        "CampusFactoryRetireMargin",
        "CampusFactoryJobId",
        "HasCVMFS",
        "HasSingularity",
    ]
    lines.append("STARTD_ATTRS = $(STARTD_ATTRS) " + " ".join(names))
    # the job's route is copied into its slot ad, so accounting can tell routes apart
    lines.append("STARTD_JOB_ATTRS = $(STARTD_JOB_ATTRS) CampusFactoryRoute")
    for name, value in spec.extra_config.items():
        if check_attribute_name(name).lower() in FACTORY_OWNED_KNOBS or name.lower() in own:
            raise UnsafeValueError(f"pilot.extra_config: {name!r} is written by the glidein itself")
        lines.append(f"{name} = {check_config_value(value)}")
    return lines


def _heredoc(command: str, delimiter: str, body: list[str]) -> list[str]:
    """A quoted heredoc (no expansion); no line of ``body`` can end it early."""
    if any(line == delimiter or "\n" in line or "\r" in line for line in body):
        raise UnsafeValueError(f"a line of the glidein's files would end its heredoc ({delimiter})")
    return [f"{command} <<'{delimiter}'", *body, delimiter]


def glidein_payload(spec: GlideinSpec) -> list[str]:
    """Bash lines that run the glidein; they end with the pilot's exit status in ``cf_rc``."""
    if not _TOKEN.fullmatch(spec.token):
        raise UnsafeValueError("the pilot token holds characters a token never has")
    if spec.cpus < 1 or spec.memory_mb < 1:
        raise ValueError("a glidein needs at least one cpu and some memory")
    if not _SCRATCH.fullmatch(spec.scratch):
        raise UnsafeValueError(f"invalid scratch directory {spec.scratch!r}")
    locations = " ".join(shlex.quote(p) for p in spec.condor_locations)
    repos = " ".join(shlex.quote(r) for r in spec.cvmfs_repositories)
    tarball = shlex.quote(spec.tarball) if spec.tarball else "''"
    summary_dir = shlex.quote(spec.summary_dir) if spec.summary_dir else '"$PWD"'
    out = [
        "# --- glidein: find HTCondor -----------------------------------------------------",
        f'cf_dir=$(mktemp -d "{spec.scratch}/cf-pilot.XXXXXX") || exit 70',
        "trap 'rm -rf \"$cf_dir\"' EXIT",
        'chmod 755 "$cf_dir"  # jobs run as their owner and must reach execute/',
        "cf_release=''",
        f"cf_locations=({locations})",
        'for p in "${cf_locations[@]}"; do',
        '  if [ -x "$p/sbin/condor_master" ]; then cf_release=$p; break; fi',
        "done",
        f"cf_tarball={tarball}",
        'if [ -z "$cf_release" ] && [ -n "$cf_tarball" ]; then',
        '  mkdir -p "$cf_dir/release"',
        '  case "$cf_tarball" in',
        '    http://*|https://*) curl -fsSL "$cf_tarball" | tar -xz -C "$cf_dir/release" --strip-components=1 ;;',
        '    *) tar -xzf "$cf_tarball" -C "$cf_dir/release" --strip-components=1 ;;',
        "  esac",
        '  [ -x "$cf_dir/release/sbin/condor_master" ] && cf_release="$cf_dir/release"',
        "fi",
        'if [ -z "$cf_release" ]; then',
        '  echo "campus-factory pilot: no HTCondor found (looked in: ${cf_locations[*]}${cf_tarball:+ and $cf_tarball})" >&2',
        "  exit 71",
        "fi",
        "# --- glidein: the allocation actually granted --------------------------------",
        f"cf_cpus=${{SLURM_CPUS_ON_NODE:-${{PBS_NP:-${{NSLOTS:-${{LSB_DJOB_NUMPROC:-{int(spec.cpus)}}}}}}}}}",
        "cf_mem=${SLURM_MEM_PER_NODE:-}",
        'if [ -z "$cf_mem" ] && [ -n "${SLURM_MEM_PER_CPU:-}" ]; then cf_mem=$((SLURM_MEM_PER_CPU * cf_cpus)); fi',
        'if [ -z "$cf_mem" ]; then',
        "  cf_cg=$(sed -n 's/^0:://p' /proc/self/cgroup 2>/dev/null)",
        '  cf_lim=$(cat "/sys/fs/cgroup${cf_cg}/memory.max" 2>/dev/null || echo max)',
        '  case "$cf_lim" in (*[!0-9]*|"") ;; (*) cf_mem=$((cf_lim / 1048576)) ;; esac',
        "fi",
        f'case "$cf_mem" in (*[!0-9]*|"") cf_mem={int(spec.memory_mb)} ;; esac',
        f'case "$cf_cpus" in (*[!0-9]*|"") cf_cpus={int(spec.cpus)} ;; esac',
        "# --- glidein: probe capabilities ----------------------------------------------",
        "cf_cvmfs=False",
        f"cf_repos=({repos})",
        'if [ "${#cf_repos[@]}" -gt 0 ]; then',
        "  cf_cvmfs=True",
        '  for r in "${cf_repos[@]}"; do ls "/cvmfs/$r/" >/dev/null 2>&1 || cf_cvmfs=False; done',
        "fi",
        "cf_sing=False",
        "command -v apptainer >/dev/null 2>&1 || command -v singularity >/dev/null 2>&1 && cf_sing=True",
        "# --- glidein: configuration and token -----------------------------------------",
        'mkdir -p "$cf_dir/log" "$cf_dir/spool" "$cf_dir/execute" "$cf_dir/lock" "$cf_dir/run"',
        '(umask 077; mkdir -p "$cf_dir/tokens.d")',
        "# root with a condor account (HTCondor from packages): the daemons write as condor",
        'if [ "$(id -u)" = 0 ] && [ -z "${_CONDOR_CONDOR_IDS:-}" ] && getent passwd condor >/dev/null 2>&1; then',
        '  chown condor: "$cf_dir/log" "$cf_dir/spool" "$cf_dir/execute" "$cf_dir/lock" "$cf_dir/run"',
        "fi",
        *_heredoc('cat > "$cf_dir/condor_config"', "CF_CONFIG_EOF", _static_config(spec)),
        *_heredoc('(umask 077; cat > "$cf_dir/tokens.d/campus-factory"', "CF_TOKEN_EOF", [spec.token]),
        ")",
        f"cf_end=$(( $(date +%s) + {int(spec.walltime_s)} ))",
        "cf_job=${SLURM_JOB_ID:-${PBS_JOBID:-${JOB_ID:-${LSB_JOBID:-none}}}}",
        'case "$cf_job" in (*[!A-Za-z0-9_.\\[\\]-]*) cf_job=invalid ;; esac',
        "{",
        '  echo "LOCAL_DIR = $cf_dir"',
        '  echo "RELEASE_DIR = $cf_release"',
        '  echo "SBIN = $cf_release/sbin"',
        '  echo "BIN = $cf_release/bin"',
        '  echo "LIB = $cf_release/lib"',
        '  echo "LIBEXEC = $cf_release/libexec"',
        '  echo "MASTER_NAME = glidein-$CAMPUS_FACTORY_PILOT_ID"',
        '  echo "STARTD_NAME = glidein-$CAMPUS_FACTORY_PILOT_ID"',
        '  echo "NUM_CPUS = $cf_cpus"',
        '  echo "MEMORY = $cf_mem"',
        '  echo "CampusFactoryPilotId = \\"$CAMPUS_FACTORY_PILOT_ID\\""',
        '  echo "CampusFactoryJobId = \\"$cf_job\\""',
        '  echo "CampusFactoryPilotEnd = $cf_end"',
        '  echo "HasCVMFS = $cf_cvmfs"',
        '  echo "HasSingularity = $cf_sing"',
        '} >> "$cf_dir/condor_config"',
        "# --- glidein: run the master; TERM asks it to leave (QUIT: evict, re-queue) ---",
        'export CONDOR_CONFIG="$cf_dir/condor_config"',
        "cf_started=$(date +%s)",
        'env -u CAMPUS_FACTORY_SUBMISSION "$cf_release/sbin/condor_master" -f &',
        "cf_child=$!",
        'cf_leave() { cf_leaving=1; kill -QUIT "$cf_child" 2>/dev/null; }',
        'wait "$cf_child"; cf_rc=$?',
        'while kill -0 "$cf_child" 2>/dev/null; do wait "$cf_child"; cf_rc=$?; done',
        "cf_ended=$(date +%s)",
        'cf_summary=$(printf \'{"pilot_id": "%s", "job_id": "%s", "started": %s, "ended": %s, '
        '"master_exit": %s, "asked_to_leave": %s, "cpus": %s, "memory_mb": %s}\' '
        '"$CAMPUS_FACTORY_PILOT_ID" "$cf_job" "$cf_started" "$cf_ended" "$cf_rc" "$cf_leaving" "$cf_cpus" "$cf_mem")',
        'echo "CAMPUS_FACTORY_EXIT $cf_summary"',
        f'echo "$cf_summary" > {summary_dir}/"$CAMPUS_FACTORY_PILOT_ID.exit.json" 2>/dev/null || true',
    ]
    return out
