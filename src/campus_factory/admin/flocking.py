"""``doctor`` for the flocking topology: can each campus schedd of ``pool.flock_from`` flock here?

Per campus pool (``[name]``):

* **campus collector**: it answers and lists the named schedds;
* **flock to**: each schedd's running ``FLOCK_TO`` (``condor_config_val -addr``) names this
  pool's collector, and its ``MaxFlockLevel`` shows flocking is on;
* **flock token**: a token minted for the schedds' identity (``schedd_identity``, with the
  pilot token command: it runs where this pool's signing key is) is tried against this pool's
  collector with ``condor_ping ADVERTISE_SCHEDD``, holding nothing but that token, so the answer
  is the one the campus schedd would get;
* **flocking now**: the schedd's submitter ads in this collector (it flocks here now: proof that it
  reaches this collector and is authorized), or a failure when its ad's ``EffectiveFlockList``
  names this collector but none arrived.

Verdicts are pure functions (``flock_to_verdict``, ``flock_token_verdict``, ``flocking_now_verdict``);
:func:`flock_checks` runs them against the real pools through a :class:`~.doctor_io.Doctor`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..config import Config, FlockSource
from ..pilot.poolconfig import FLOCK_SCHEDD_AUTHZ
from .doctor import Check, PingResult, token_claims

if TYPE_CHECKING:
    from .doctor_io import Doctor

__all__ = ["flock_checks", "flock_to_verdict", "flock_token_verdict", "flocking_now_verdict", "same_collector"]

_FLOCK_TO_HINT = (
    "On the campus submit host {host}: install the schedd file of `campus-factory condor-config --flock-to"
    "{campus}` (FLOCK_TO = $(FLOCK_TO) {collector}, and this pool's negotiator identity in "
    "ALLOW_NEGOTIATOR_SCHEDD), then condor_reconfig there."
)


def _host_port(address: str) -> tuple[str, str]:
    text = address.strip().strip("<>").split("?", 1)[0]
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "9618")
    host = host or text
    return host.lower().strip("[]"), port or "9618"


def same_collector(entry: str, collector: str, aliases: Sequence[str] = ()) -> bool:
    """Whether a FLOCK_TO entry names the collector (host:port; port 9618 when left out).

    ``aliases``: other names of the collector's host (its address as it advertises itself).
    """
    host, port = _host_port(entry)
    names = {_host_port(collector)} | {_host_port(a) for a in aliases}
    return (host, port) in names


def flock_to_verdict(
    name: str,
    schedd: str,
    flock_to: str | None,
    error: str,
    collector: str,
    *,
    aliases: Sequence[str] = (),
    campus: str = "",
) -> Check:
    """The campus schedd's FLOCK_TO must name this pool's collector."""
    hint = _FLOCK_TO_HINT.format(host=schedd, collector=collector, campus=f" --campus {campus}" if campus else "")
    if flock_to is None:
        return Check(name, "warn", f"cannot read FLOCK_TO from {schedd}: {error}", hint)
    entries = [e for e in flock_to.replace(",", " ").split() if e]
    if not entries:
        return Check(name, "fail", f"{schedd} has no FLOCK_TO: its jobs never flock to this pool", hint)
    if not any(same_collector(e, collector, aliases) for e in entries):
        return Check(
            name, "fail", f"{schedd} flocks to {', '.join(entries)}, not to this pool's collector {collector}", hint
        )
    return Check(name, "ok", f"{schedd} flocks to {collector} (FLOCK_TO = {flock_to})")


def flock_token_verdict(name: str, source: FlockSource, ping: PingResult | None, allow: str | None) -> Check:
    """Whether this pool's collector accepts the campus schedds' token for ADVERTISE_SCHEDD."""
    hint = (
        "On this pool's central manager install the file of `campus-factory condor-config --strict --flock-from "
        f"<campus submit host>` (ALLOW_ADVERTISE_SCHEDD lists {source.schedd_id}; IDTOKENS for ADVERTISE_SCHEDD) "
        "and run condor_reconfig; mint the schedds' token there (`condor_token_create -identity "
        f"{source.schedd_id} -authz ADVERTISE_SCHEDD -authz READ`) and install it on the campus submit host in "
        "SEC_TOKEN_SYSTEM_DIRECTORY (mode 600). Never allow '*' or a host."
    )
    if ping is None:
        return Check(name, "skip", "this pool's collector is unreachable")
    if ping.authorized:
        who = ping.identity or source.schedd_id
        return Check(name, "ok", f"this pool's collector accepts {who} for ADVERTISE_SCHEDD")
    if ping.kind == "denied":
        shown = f" (its ALLOW_ADVERTISE_SCHEDD is {allow!r})" if allow else ""
        return Check(
            name,
            "fail",
            f"this pool's collector does not authorize {source.schedd_id} for ADVERTISE_SCHEDD{shown}: the campus "
            "schedd's submitter ads are refused and its jobs never flock here",
            hint,
        )
    if ping.kind == "no-methods":
        return Check(name, "fail", f"this pool's collector offers no token authentication: {ping.detail}", hint)
    return Check(name, "fail", f"condor_ping ADVERTISE_SCHEDD with the schedds' token failed: {ping.detail}", hint)


def flocking_now_verdict(
    name: str, schedd: str, effective: str | None, submitters: int, collector: str, *, aliases: Sequence[str] = ()
) -> Check:
    """Evidence from the running pools: a schedd flocking here now (``effective``: its
    EffectiveFlockList) has its submitter ads in this collector."""
    if submitters:
        return Check(name, "ok", f"{schedd} flocks here now: {submitters} submitter ad(s) in {collector}")
    entries = [e for e in (effective or "").replace(",", " ").split() if e]
    if not any(same_collector(e, collector, aliases) for e in entries):
        return Check(name, "ok", f"{schedd} is not flocking here now (no idle job it cannot run): nothing to see")
    return Check(
        name,
        "fail",
        f"{schedd} flocks here now (EffectiveFlockList {effective}) but none of its submitter ads reached {collector}",
        f"From the campus submit host: `condor_ping -pool {collector} -type collector ADVERTISE_SCHEDD` with the "
        "schedd's token (a firewall, a wrong token issuer: the pools need different TRUST_DOMAINs); the "
        "campus SchedLog names the refusal.",
    )


def _campus_view(source: FlockSource, collector: str) -> tuple[list[Any], int]:
    """The named schedds' ads in the campus collector; submitter ads of them in this collector."""
    import htcondor2

    ads = htcondor2.Collector(source.collector).locateAll(htcondor2.DaemonType.Schedd)
    mine = [a for a in ads if a.get("Name") in set(source.schedds)]
    names = " || ".join(f'ScheddName == "{s}"' for s in source.schedds)
    subs = htcondor2.Collector(collector).query(htcondor2.AdType.Submitter, constraint=names, projection=["Name"])
    return mine, len(list(subs))


async def _ping_schedd_token(doc: Doctor, source: FlockSource) -> PingResult | str:
    opts = doc.config.pilot.token
    argv = [*opts.command, "-identity", source.schedd_id]
    for a in FLOCK_SCHEDD_AUTHZ:
        argv += ["-authz", a]
    argv += ["-lifetime", "600"]
    res = await doc.run_command(argv, opts.environment or None)
    if isinstance(res, str) or not res.ok:
        return f"cannot mint the schedds' token with {argv[0]}: {res if isinstance(res, str) else res.stderr[-500:]}"
    try:
        token_claims(res.stdout)
    except ValueError as exc:
        return f"the token command printed something that is not a token ({exc})"
    (ping,) = await doc.ping(res.stdout.strip(), ("ADVERTISE_SCHEDD",))
    return ping


async def flock_checks(doc: Doctor, config: Config) -> list[Check]:
    """Every check of every ``pool.flock_from`` entry, in order."""
    out: list[Check] = []
    here = config.pool.collector
    aliases = [doc.collector_address] if doc.collector_address else []
    for source in config.pool.flock_from:
        tag = f"[{source.name}]"
        campus = source.name if len(config.pool.flock_from) > 1 else ""
        try:
            schedds, submitters = await asyncio.wait_for(asyncio.to_thread(_campus_view, source, here), doc.timeout)
        except Exception as exc:  # the bindings raise their own types; a timeout too
            out.append(
                Check(
                    f"campus collector {tag}",
                    "fail",
                    f"the campus collector at {source.collector} is unreachable: {exc or 'no answer'}",
                    "Check pool.flock_from.collector; the campus collector must allow READ from this host.",
                )
            )
            continue
        found = {str(a.get("Name")) for a in schedds}
        missing = [s for s in source.schedds if s not in found]
        if missing:
            out.append(
                Check(
                    f"campus collector {tag}",
                    "fail",
                    f"the campus collector does not know {', '.join(missing)}",
                    "Fix pool.flock_from.schedds (`condor_status -pool <campus collector> -schedd -af Name`).",
                )
            )
        else:
            out.append(Check(f"campus collector {tag}", "ok", f"{source.collector} lists {', '.join(source.schedds)}"))
        for ad in schedds:
            name = str(ad.get("Name"))
            value, error = await doc.remote_knob(str(ad.get("MyAddress") or ""), "FLOCK_TO")
            check = f"flock to {tag} {name}"
            out.append(flock_to_verdict(check, name, value, error, here, aliases=aliases, campus=campus))
            effective = ad.get("EffectiveFlockList")
            now_name = f"flocking now {tag} {name}"
            flocks = str(effective) if isinstance(effective, str) else None
            out.append(flocking_now_verdict(now_name, name, flocks, submitters, here, aliases=aliases))
        if not doc.reachable:
            out.append(flock_token_verdict(f"flock token {tag}", source, None, None))
            continue
        ping = await _ping_schedd_token(doc, source)
        if isinstance(ping, str):
            out.append(Check(f"flock token {tag}", "fail", ping, "pilot.token.command mints the schedds' token too."))
            continue
        allow = None
        if ping.kind == "denied":
            allow = (await doc.remote_knob(doc.collector_address, "ALLOW_ADVERTISE_SCHEDD"))[0]
        out.append(flock_token_verdict(f"flock token {tag}", source, ping, allow))
    return out
