"""``campus-factory doctor``: end-to-end checks of a running setup, in words an admin can act on.

Each check returns a :class:`Check` (name, status ok/warn/fail/skip, message, hint). The pool
side runs HTCondor's own tools through the executor: the pilots' token is minted with the
configured command and tried against the collector with ``condor_ping`` in an environment that
holds nothing but that token (``CONDOR_CONFIG=ONLY_ENV``, an empty password directory), so the
answer is the one a pilot would get. Parsing and verdicts are pure functions (``token_claims``,
``parse_ping``, ``token_verdict``, ``join_checks``, ``rank_check``); the I/O lives in
:mod:`campus_factory.admin.doctor_io`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from ..config import Config
from ..ledger import LIVE, PilotRecord, PilotState

__all__ = [
    "PING_LEVELS",
    "Check",
    "PingResult",
    "TokenClaims",
    "join_checks",
    "parse_ping",
    "rank_check",
    "token_claims",
    "token_verdict",
]

Status = Literal["ok", "warn", "fail", "skip"]
#: what a pilot's startd and master do at the collector
PING_LEVELS = ("ADVERTISE_STARTD", "ADVERTISE_MASTER")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class TokenClaims:
    identity: str
    issuer: str
    scopes: tuple[str, ...] | None  # None: no scope, the identity's full rights
    expires: float | None
    issued: float | None


def token_claims(token: str) -> TokenClaims:
    """The claims of an IDTOKEN (a JWT), read without checking its signature."""
    try:
        body = token.strip().split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not an IDTOKEN: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not an IDTOKEN: its payload is not an object")
    scope = data.get("scope")
    scopes = None
    if isinstance(scope, str):
        scopes = tuple(s.removeprefix("condor:/") for s in scope.split() if s.startswith("condor:/"))
    exp, iat = data.get("exp"), data.get("iat")
    return TokenClaims(
        identity=str(data.get("sub", "?")),
        issuer=str(data.get("iss", "?")),
        scopes=scopes,
        expires=float(exp) if isinstance(exp, int | float) else None,
        issued=float(iat) if isinstance(iat, int | float) else None,
    )


@dataclass(frozen=True)
class PingResult:
    level: str
    authorized: bool
    identity: str | None = None
    kind: str = ""  # "", "denied", "authentication", "no-methods", "unreachable", "other"
    detail: str = ""


def parse_ping(level: str, output: str) -> PingResult:
    """Read ``condor_ping -verbose LEVEL`` output (stdout and stderr together)."""
    mapping = re.search(r"Remote Mapping:\s*(\S+)", output)
    if re.search(r"Authorized:\s*TRUE", output):
        return PingResult(level, True, mapping.group(1) if mapping else None)
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "SECMAN" in ln or "AUTHENTICATE" in ln), lines[-1] if lines else "")
    denied = re.search(r'DENIED" from server for user (\S+)', output)
    if denied:
        return PingResult(level, False, denied.group(1), "denied", detail)
    if re.search(r"AUTHENTICATE|authentication .*failed|Failed to authenticate", output, re.IGNORECASE):
        return PingResult(level, False, None, "authentication", detail)
    if re.search(r"no auth methods|Connection closed during command authorization", output, re.IGNORECASE):
        return PingResult(level, False, None, "no-methods", detail)
    if re.search(r"Can't connect|Failed to connect|unable to locate|connection refused", output, re.IGNORECASE):
        return PingResult(level, False, None, "unreachable", detail)
    return PingResult(level, False, None, "other", detail or "condor_ping gave no answer")


MINT_HINT = (
    "The token command (pilot.token.command) must pass on every -authz it is given "
    "(ADVERTISE_STARTD, ADVERTISE_MASTER, READ); look for a wrapper or a site policy that drops one. "
    "Try it by hand: campus-factory runs `<command> -identity <id> -authz ADVERTISE_STARTD -authz "
    "ADVERTISE_MASTER -authz READ -lifetime <s>`; the token's middle part (base64 JSON) shows its scope."
)


def token_verdict(
    name: str,
    claims: TokenClaims,
    pings: Sequence[PingResult],
    *,
    expected_identity: str,
    needed: Iterable[str],
    allow: Mapping[str, str | None],
    lifetime_wanted: float,
    now: float,
) -> Check:
    """Say whether the pool would accept the pilots' token, and which authorization is missing."""
    missing = [a for a in needed if claims.scopes is not None and a not in claims.scopes]
    scope = ", ".join(claims.scopes) if claims.scopes is not None else "(no scope: the identity's full rights)"
    if claims.expires is not None and claims.expires <= now:
        return Check(name, "fail", f"the minted token for {claims.identity} has already expired", MINT_HINT)
    if claims.identity != expected_identity:
        return Check(
            name,
            "fail",
            f"the minted token is for {claims.identity}, not {expected_identity} (pilot.token.identity)",
            MINT_HINT,
        )
    denied = [p for p in pings if not p.authorized]
    if missing:
        refused = [p.level for p in denied if p.level in missing]
        head = f"the pool refuses the pilots' token for {', '.join(refused)}: " if refused else ""
        return Check(
            name,
            "fail",
            f"{head}the token lacks the {', '.join(missing)} authorization (identity {claims.identity}, "
            f"scope: {scope}); pilots would start but never join",
            MINT_HINT,
        )
    for p in denied:
        if p.kind == "denied":
            value = allow.get(p.level)
            shown = f" (its ALLOW_{p.level} is {value!r})" if value else ""
            shown = f" (ALLOW_{p.level} is not defined there)" if value == "" else shown
            who = p.identity or claims.identity
            if who.startswith("unauthenticated@"):
                who = f"{who}: it does not ask for a token for {p.level} and refuses it unauthenticated"
            else:
                who = f"{who} for {p.level}"
            return Check(
                name,
                "fail",
                f"the collector does not authorize {who}{shown}: pilots would start but never join",
                "Install the central manager file from `campus-factory condor-config` (it sets "
                f"ALLOW_{p.level} to the pilot identities) and run condor_reconfig there, or set "
                "pilot.token.identity to an identity the pool allows. Never allow '*' or condor@*.",
            )
        if p.kind == "authentication":
            return Check(
                name,
                "fail",
                f"the collector does not accept the token for {p.level}: {p.detail} (issuer {claims.issuer})",
                "The token must be signed with a key the collector has: mint it on the central manager "
                "(or with a copy of its signing key; pilot.token.key names the key) and make the pool's "
                "TRUST_DOMAIN equal the token's issuer.",
            )
        if p.kind == "no-methods":
            return Check(
                name,
                "fail",
                f"the collector offers no token authentication for {p.level}: {p.detail}",
                f"Set SEC_{p.level}_AUTHENTICATION_METHODS to include IDTOKENS on the central manager "
                "(`campus-factory condor-config` writes it), then condor_reconfig.",
            )
        return Check(name, "fail", f"condor_ping {p.level} failed: {p.detail}", "Run the collector check first.")
    life = (claims.expires - now) if claims.expires is not None else None
    if life is not None and life < lifetime_wanted - 120:
        return Check(
            name,
            "warn",
            f"the token is accepted, but lives {life / 3600:.1f} h where {lifetime_wanted / 3600:.1f} h were asked "
            "(walltime + pilot.token.queue_allowance): pilots that wait longer in the queue will be refused",
            "The minting command ignores -lifetime, or the pool caps token lifetimes.",
        )
    levels = " and ".join(p.level for p in pings) or "nothing (collector unreachable)"
    return Check(name, "ok", f"the pool accepts {claims.identity} for {levels}; scope: {scope}")


def _age(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def join_checks(config: Config, pilots: Sequence[PilotRecord], now: float) -> list[Check]:
    """Per site: pilots that started but never joined the pool (a black hole)."""
    out = []
    collector = config.pool.collector
    for site in config.sites:
        iso = site.isolation
        mine = [p for p in pilots if p.site == site.name and p.created_at >= now - iso.window]
        stuck = [
            p
            for p in mine
            if p.state is PilotState.RUNNING and p.started_at is not None and now - p.started_at > iso.join_timeout
        ]
        never = [p for p in mine if p.state not in LIVE and p.started_at is not None and p.joined_at is None]
        joined = [p for p in mine if p.joined_at is not None]
        name = f"pilots join [{site.name}]"
        if not stuck and not never:
            msg = (
                f"{len(joined)} pilot(s) joined the pool in the last {_age(iso.window)}" if mine else "no recent pilots"
            )
            out.append(Check(name, "ok", msg))
            continue
        bad = len(stuck) + len(never)
        example = (stuck or never)[0]
        what = []
        if stuck:
            what.append(f"{len(stuck)} running for more than {_age(iso.join_timeout)} without joining")
        if never:
            what.append(f"{len(never)} ended without ever joining")
        msg = (
            f"pilots start but never join the pool: {'; '.join(what)} (e.g. {example.pilot_id}, job "
            f"{example.job_id or '?'}); {len(joined)} joined"
        )
        hint = (
            f"The workers' startds cannot reach or are refused by the collector at {collector}. Check, in "
            f"this order: a firewall between the workers and {collector} (from a worker: `condor_ping -pool "
            f"{collector} -type collector READ`); workers without inbound connectivity need pilot.ccb = true; "
            "a token that expired while the pilot waited in the queue (raise pilot.token.queue_allowance) "
            "or that the pool refuses (see the token check); HTCondor missing on the workers "
            f"(pilot.condor_locations). The pilots' logs are in {site.batch.work_dir} on the site."
        )
        status: Literal["warn", "fail"] = "fail" if bad >= iso.black_hole_after or not joined else "warn"
        out.append(Check(name, status, msg, hint))
    return out


def rank_check(value: str | None, error: str = "") -> Check:
    """The rank hazard: NEGOTIATOR_PRE_JOB_RANK must put offline ads below every real slot."""
    name = "offline ads: negotiator rank"
    hint = (
        "Install the central manager file from `campus-factory condor-config` (it sets "
        "NEGOTIATOR_PRE_JOB_RANK = ... - 1000000000 * (Offline =?= True)) and run condor_reconfig there."
    )
    if value is None:
        return Check(name, "warn", f"cannot read NEGOTIATOR_PRE_JOB_RANK from the negotiator: {error}", hint)
    if "offline" not in value.lower():
        return Check(
            name,
            "fail",
            f"NEGOTIATOR_PRE_JOB_RANK does not rank offline ads last ({value or 'not defined'}): a smaller "
            "offline ad beats real pilots every cycle and jobs wait while pilots idle out",
            hint,
        )
    return Check(name, "ok", "the negotiator ranks offline ads below real slots")
