"""Cloud-init user-data that turns a stock VM image into one pilot.

The rendered ``#cloud-config`` document

* writes ``/etc/campus-factory/pilot.conf``: HTCondor configuration that advertises the node as
  ``IsCloudNode = True`` with its site, factory and pilot id (a startd on the image includes it
  through ``LOCAL_CONFIG_DIR`` or ``include : /etc/campus-factory/pilot.conf``);
* writes ``/usr/local/libexec/campus-factory-pilot`` (mode 0700), the pilot script, and runs it from
  ``runcmd``: it schedules a power-off at the end of the walltime as a safety net, runs the
  payload in the foreground, forwards TERM to it (a clean OS shutdown lets it leave), and exits;
* powers the VM off once the payload has exited (``power_state``), whatever its exit code; on
  EC2 the instance is started with ``InstanceInitiatedShutdownBehavior=terminate``, elsewhere the
  provider deletes instances it finds shut off.

Every value reaches the document quoted: YAML scalars are JSON strings (a subset of YAML's
double-quoted style), shell words go through ``shlex.quote``, ClassAd strings are escaped and
config values are rejected when they hold line breaks.

Two payloads: ``command`` runs a command baked into the image (its startd includes the
configuration above); ``glidein`` (:func:`glidein_lines`) runs the same glidein as a batch pilot,
from the :class:`~campus_factory.pilot.glidein.GlideinSpec` with its token: it finds HTCondor
on the image (``pilot.condor_locations``, a CVMFS path or ``pilot.tarball``), advertises
``IsCloudNode = True`` and leaves after ``idle_timeout`` without a job; the VM then powers off.
The script holding the token is written mode 0700, and jobs are kept away from the metadata
service (which serves the user-data) by a firewall rule when the image has ``iptables``.

Hints for baking an image: install HTCondor (or mount CVMFS holding it), enable cloud-init, keep
``cloud-final.service`` without a start timeout (the default ``TimeoutSec=0``), and make sure the
image powers off on ACPI shutdown so that a terminate request reaches the pilot as a TERM.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import NotSupportedError, UnsafeValueError
from .glidein import GlideinSpec, check_config_value, glidein_payload
from .script import END_LINES, START_LINES, command_lines

__all__ = [
    "CONFIG_PATH",
    "SCRIPT_PATH",
    "CloudPilot",
    "glidein_lines",
    "pilot_attributes",
    "render_pilot_script",
    "render_user_data",
]

CONFIG_PATH = "/etc/campus-factory/pilot.conf"
SCRIPT_PATH = "/usr/local/libexec/campus-factory-pilot"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PILOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class CloudPilot:
    """Everything one cloud pilot's user-data needs."""

    pilot_id: str
    site: str
    factory: str
    tag: str  # the submission tag, cf-<factory>-<submission id>
    walltime_s: float
    payload: str = "command"  # "command" or "glidein"
    command: Sequence[str] = ("sleep", "infinity")
    environment: Mapping[str, str] = field(default_factory=dict)
    glidein: GlideinSpec | None = None
    shutdown_margin_s: float = 300.0  # the safety-net power-off comes this long after the walltime


def _yaml(value: str) -> str:
    """A YAML scalar: a JSON string is a valid YAML double-quoted scalar."""
    return json.dumps(value, ensure_ascii=True)


def _classad_string(text: str) -> str:
    return '"' + check_config_value(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def pilot_attributes(pilot: CloudPilot) -> str:
    """The HTCondor configuration that tags the node (``IsCloudNode = True`` and who started it)."""
    attrs = {
        "IsCloudNode": "True",
        "CampusFactorySite": _classad_string(pilot.site),
        "CampusFactoryName": _classad_string(pilot.factory),
        "CampusFactoryPilotId": _classad_string(pilot.pilot_id),
    }
    lines = ["# campus-factory cloud pilot: generated, do not edit."]
    lines += [f"{k} = {v}" for k, v in attrs.items()]
    lines.append("STARTD_ATTRS = $(STARTD_ATTRS) " + " ".join(attrs))
    return "\n".join(lines) + "\n"


def glidein_lines(spec: GlideinSpec) -> list[str]:
    """The HTCondor glidein on a cloud VM: the batch glidein (:mod:`.glidein`), run by root.

    Before it: a working directory for its exit summary, HTCondor's account (with no ``condor``
    account on the image the daemons run as root, ``CONDOR_IDS = 0.0``, as in a personal pool),
    and a firewall rule that keeps jobs (any user but root) away from the metadata service, which
    serves the user-data and with it the pilot's token.
    """
    if not spec.is_cloud:
        raise ValueError(f"site {spec.site}: a cloud pilot's glidein must advertise IsCloudNode = True")
    block = "OUTPUT -d 169.254.169.254 -m owner ! --uid-owner 0 -j REJECT"
    return [
        "# --- cloud VM: work directory, HTCondor's account, metadata service -----------",
        'cf_work="${CAMPUS_FACTORY_WORK_DIR:-/var/lib/campus-factory}"',
        'mkdir -p "$cf_work" && cd "$cf_work" || exit 70',
        'if [ "$(id -u)" = 0 ]; then',
        "  getent passwd condor >/dev/null 2>&1 || export _CONDOR_CONDOR_IDS=0.0",
        "  if command -v iptables >/dev/null 2>&1; then",
        f"    iptables -C {block} 2>/dev/null || iptables -I {block} \\",
        '      || echo "campus-factory pilot: could not keep jobs from the metadata service" >&2',
        "  else",
        '    echo "campus-factory pilot: no iptables: jobs can read the user-data (the pilot token)" >&2',
        "  fi",
        "fi",
        *glidein_payload(spec),
    ]


def _check(pilot: CloudPilot) -> None:
    if not _PILOT_ID.fullmatch(pilot.pilot_id):
        raise UnsafeValueError(f"invalid pilot id {pilot.pilot_id!r}")
    for name in pilot.environment:
        if not _ENV_NAME.fullmatch(name):
            raise UnsafeValueError(f"invalid environment variable name {name!r}")
    if pilot.walltime_s <= 0:
        raise ValueError("the walltime must be positive")


def render_pilot_script(pilot: CloudPilot) -> str:
    """The pilot script the VM runs once it has booted."""
    _check(pilot)
    env = {
        "CAMPUS_FACTORY_PILOT_ID": pilot.pilot_id,
        "CAMPUS_FACTORY_SITE": pilot.site,
        "CAMPUS_FACTORY_NAME": pilot.factory,
        "CAMPUS_FACTORY_TAG": pilot.tag,
        "CAMPUS_FACTORY_IS_CLOUD_NODE": "true",
        "CAMPUS_FACTORY_CONFIG": CONFIG_PATH,
        **pilot.environment,
    }
    minutes = max(1, int((pilot.walltime_s + pilot.shutdown_margin_s + 59) // 60))
    lines = [
        "#!/bin/bash",
        "# campus-factory cloud pilot: generated, do not edit.",
        "set -u",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines += [
        "# safety net: the VM never outlives its walltime",
        f"shutdown -P +{minutes} 'campus-factory: pilot walltime reached' >/dev/null 2>&1 || true",
    ]
    lines += START_LINES
    if pilot.payload == "glidein":
        if pilot.glidein is None:
            raise NotSupportedError("the glidein payload needs a glidein specification")
        lines += glidein_lines(pilot.glidein)
    elif pilot.payload == "command":
        lines += command_lines(pilot.command)
    else:
        raise NotSupportedError(f"unknown pilot payload {pilot.payload!r}")
    lines += END_LINES
    return "\n".join(lines)


def render_user_data(pilot: CloudPilot) -> str:
    """The ``#cloud-config`` user-data of one pilot VM."""
    script = render_pilot_script(pilot)
    config = pilot_attributes(pilot)
    return "\n".join(
        [
            "#cloud-config",
            f"# campus-factory pilot {pilot.pilot_id} of site {pilot.site}: generated, do not edit.",
            "write_files:",
            f"  - path: {_yaml(CONFIG_PATH)}",
            '    permissions: "0644"',
            f"    content: {_yaml(config)}",
            f"  - path: {_yaml(SCRIPT_PATH)}",
            '    permissions: "0700"',  # it may hold the pilot's token
            f"    content: {_yaml(script)}",
            "runcmd:",
            f"  - [{_yaml('/bin/bash')}, {_yaml(SCRIPT_PATH)}]",
            "power_state:",
            '  mode: "poweroff"',
            '  delay: "now"',
            f"  message: {_yaml(f'campus-factory pilot {pilot.pilot_id} finished')}",
            "  timeout: 30",
            "  condition: true",
            "",
        ]
    )
