"""The I/O side of ``campus-factory doctor``: runs each check against the real pool and sites.

Collector queries go through ``htcondor2`` (as the factory's own do), each bounded by the
timeout; HTCondor tools and scheduler commands run through the injected executor.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Config, SiteConfig
from ..domain import PilotRequest
from ..errors import CampusFactoryError, CommandError
from ..pilot.script import PilotScript, render_batch_script
from ..pilot.tokens import PILOT_AUTHZ, pilot_identity, token_argv
from ..providers import Submission, build_provider
from ..providers._batch import BatchProvider
from ..transport.executor import CommandResult, Executor
from .doctor import PING_LEVELS, Check, PingResult, join_checks, parse_ping, rank_check, token_claims, token_verdict
from .idle import idle_checks, idle_timeout_checks
from .probe import locate_schedds

__all__ = ["Doctor"]


def _probe_submission(site: SiteConfig) -> Submission:
    """One pilot of the site's own slot and walltime: what the factory would really submit."""
    slot = site.slot
    pilot = PilotRequest("doctor-0", slot.cpus, slot.memory_mb, slot.disk_mb, slot.gpus, site.walltime)
    return Submission("doctor", "cf-doctor-check", (pilot,))


def _shape(site: SiteConfig) -> str:
    slot = site.slot
    gpus = f", {slot.gpus} GPU(s)" if slot.gpus else ""
    return f"{slot.cpus} cpu(s), {slot.memory_mb} MB{gpus}, walltime {site.walltime / 3600:g} h"


async def _in_thread(fn: Callable[[], Any], timeout: float) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(fn), timeout)


def _tail(result: CommandResult) -> str:
    return (result.stderr.strip() or result.stdout.strip())[-1500:] or f"exit {result.returncode}, no output"


class Doctor:
    """Runs the checks of one config; ``run`` returns them in order."""

    def __init__(
        self,
        config: Config,
        executor: Executor,
        *,
        timeout: float = 15.0,
        now: float | None = None,
        ledger_url: str | None = None,
    ) -> None:
        self.config = config
        self.executor = executor
        self.timeout = timeout
        self.now = time.time() if now is None else now
        self.ledger_url = ledger_url or config.factory.ledger_url
        self.reachable = False
        self.collector_address: str | None = None

    # -- helpers ----------------------------------------------------------------------------
    def tool(self, name: str) -> str:
        """An HTCondor tool: beside the token command when that is a path, else on PATH."""
        first = self.config.pilot.token.command[0]
        if os.path.isabs(first) and (Path(first).parent / name).exists():
            return str(Path(first).parent / name)
        return shutil.which(name) or name

    def condor_env(self) -> dict[str, str]:
        env = dict(self.config.pilot.token.environment)
        nothing = "CONDOR_CONFIG" not in env and "CONDOR_CONFIG" not in os.environ
        if nothing and not Path("/etc/condor/condor_config").exists():
            env["CONDOR_CONFIG"] = "ONLY_ENV"
        return env

    async def run_command(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> CommandResult | str:
        try:
            return await self.executor.run(argv, timeout=self.timeout, env=env)
        except CommandError as exc:
            return str(exc)

    async def remote_knob(self, address: str | None, knob: str) -> tuple[str | None, str]:
        """A knob's value as a running daemon sees it (``condor_config_val -addr``): (value, error)."""
        if not address:
            return None, "its address is unknown"
        res = await self.run_command([self.tool("condor_config_val"), "-addr", address, knob], self.condor_env())
        if isinstance(res, str):
            return None, res
        if not res.ok:
            return None, _tail(res)
        value = res.stdout.strip()
        return ("" if value == "Not defined" else value), ""

    async def negotiator_address(self) -> tuple[str | None, str]:
        """The pool's negotiator, as the collector lists it: (address, error)."""

        def locate() -> str | None:
            import htcondor2

            address = htcondor2.Collector(self.config.pool.collector).locate(htcondor2.DaemonType.Negotiator)
            return str(address.get("MyAddress") or "") or None

        try:
            return await _in_thread(locate, self.timeout), ""
        except Exception as exc:  # the bindings raise their own types; a timeout too
            return None, f"no negotiator in the collector: {exc or 'no answer'}"

    # -- checks -----------------------------------------------------------------------------
    async def check_collector(self) -> Check:
        addr = self.config.pool.collector

        def query() -> list[Any]:
            import htcondor2

            return list(htcondor2.Collector(addr).query(htcondor2.AdType.Collector, projection=["Name", "MyAddress"]))

        hint = (
            f"Check pool.collector ({addr}); on the central manager `condor_status -collector` must answer; "
            "open the collector's TCP port from this host (firewall); the collector must allow READ from this host."
        )
        try:
            ads = await _in_thread(query, self.timeout)
        except TimeoutError:
            return Check("collector", "fail", f"the collector at {addr} did not answer within {self.timeout:g} s", hint)
        except Exception as exc:  # the bindings raise their own types
            return Check("collector", "fail", f"the collector at {addr} is unreachable: {exc}", hint)
        self.reachable = True
        self.collector_address = str(ads[0].get("MyAddress")) if ads and ads[0].get("MyAddress") else f"<{addr}>"
        return Check("collector", "ok", f"the collector at {addr} answers")

    async def check_schedds(self) -> Check:
        wanted = set(self.config.pool.schedds)
        try:
            names = set(await locate_schedds(self.config.pool.collector, self.timeout))
        except Exception as exc:
            return Check("schedds", "fail", f"cannot list the schedds: {exc}")
        missing = sorted(wanted - names)
        if missing:
            return Check(
                "schedds",
                "fail",
                f"pool.schedds names {', '.join(missing)}, which the collector does not know "
                f"(it knows: {', '.join(sorted(names)) or 'none'})",
                "Fix pool.schedds (the schedds' Name attribute: `condor_status -schedd -af Name`).",
            )
        if not names and self.config.pool.flock_from:
            campus = ", ".join(s.name for s in self.config.pool.flock_from)
            return Check("schedds", "ok", f"no schedd in this pool: the demand is what flocks here from {campus}")
        if not names:
            return Check("schedds", "warn", "the collector lists no schedd: the factory will see no demand")
        return Check("schedds", "ok", f"demand is read from {', '.join(sorted(wanted or names))}")

    async def check_token(self, site: SiteConfig) -> Check:
        opts = self.config.pilot.token
        name = f"pilot token [{site.name}]"
        lifetime = site.walltime + opts.queue_allowance
        try:
            argv = token_argv(opts, site.name, lifetime)
            identity = pilot_identity(opts, site.name)
        except CampusFactoryError as exc:
            return Check(name, "fail", str(exc), "Fix pilot.token.identity (user@domain, {site} allowed).")
        mint_hint = (
            "pilot.token.command must run where the pool's signing key is (the central manager's "
            "SEC_PASSWORD_DIRECTORY, usually as root); pilot.token.environment can set CONDOR_CONFIG."
        )
        try:
            res = await self.executor.run(argv, timeout=min(opts.timeout, self.timeout), env=opts.environment or None)
        except CommandError as exc:
            return Check(name, "fail", f"cannot mint a pilot token with {argv[0]}: {exc}", mint_hint)
        if not res.ok:
            return Check(
                name, "fail", f"cannot mint a pilot token: {argv[0]} exited {res.returncode}: {_tail(res)}", mint_hint
            )
        token = res.stdout.strip()
        try:
            claims = token_claims(token)
        except ValueError as exc:
            return Check(name, "fail", f"the token command printed something that is not a token ({exc})", mint_hint)
        pings = await self.ping(token) if self.reachable else []
        allow: dict[str, str | None] = {}
        for p in pings:
            if p.kind == "denied":
                allow[p.level] = (await self.remote_knob(self.collector_address, f"ALLOW_{p.level}"))[0]
        return token_verdict(
            name,
            claims,
            pings,
            expected_identity=identity,
            needed=PILOT_AUTHZ,
            allow=allow,
            lifetime_wanted=lifetime,
            now=self.now,
        )

    async def ping(self, token: str, levels: Sequence[str] = PING_LEVELS) -> list[PingResult]:
        """condor_ping each level at the collector with nothing but ``token`` (as a pilot would)."""
        out = []
        with tempfile.TemporaryDirectory(prefix="cf-doctor-") as tmp:
            tokens, empty = Path(tmp) / "tokens.d", Path(tmp) / "empty"
            tokens.mkdir(mode=0o700)
            empty.mkdir(mode=0o700)
            fd = os.open(tokens / "pilot", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # HTCondor skips laxer modes
            with os.fdopen(fd, "w") as fh:
                fh.write(token + "\n")
            env = {
                "CONDOR_CONFIG": "ONLY_ENV",
                "_CONDOR_SEC_TOKEN_DIRECTORY": str(tokens),
                "_CONDOR_SEC_TOKEN_SYSTEM_DIRECTORY": str(empty),
                "_CONDOR_SEC_PASSWORD_DIRECTORY": str(empty),
                "_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS": "IDTOKENS",
            }
            ping = self.tool("condor_ping")
            for level in levels:
                argv = [ping, "-pool", self.config.pool.collector, "-type", "collector", "-verbose", level]
                res = await self.run_command(argv, env)
                text = res if isinstance(res, str) else res.stdout + "\n" + res.stderr
                out.append(parse_ping(level, text))
        return out

    async def check_site(self, site: SiteConfig) -> list[Check]:
        name = f"site [{site.name}]"
        if not site.enabled:
            return [Check(name, "skip", "disabled (enabled = false)")]
        short = min(site.batch.command_timeout, self.timeout)
        cfg = site.model_copy(update={"batch": site.batch.model_copy(update={"command_timeout": short})})
        try:
            provider = build_provider(cfg, self.config.pilot, self.executor, self.config.factory.name)
        except Exception as exc:  # a provider refusing its config, a missing SDK
            return [Check(name, "fail", f"{site.name}: cannot set up the {site.provider} provider: {exc}")]
        batch = provider if isinstance(provider, BatchProvider) else None
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in site.batch.environment.items())
        how = f" (run by hand: {env + ' ' if env else ''}{shlex.join(batch.queue_argv())})" if batch else ""
        checks = []
        answered = False
        try:
            obs = await asyncio.wait_for(provider.observe([], f"cf-{self.config.factory.name}-"), short + 5)
            live = sum(not job.state.finished for job in obs.tagged)  # ended jobs linger (MinJobAge)
            ended = len(obs.tagged) - live
            msg = f"answers; {live} of our pilots in its queue" + (f" ({ended} ended)" if ended else "")
            checks.append(Check(f"{name} queue", "ok", msg))
            answered = True
        except TimeoutError:
            checks.append(Check(f"{name} queue", "fail", f"{site.name}: no answer within {short:g} s{how}"))
        except Exception as exc:
            hint = (
                "Check the scheduler runs and this account may use it: batch.environment (e.g. SLURM_CONF), "
                "batch.bin_dir, the transport (SSH host, user, key)."
            )
            checks.append(Check(f"{name} queue", "fail", f"{site.name}: its queue command failed: {exc}{how}", hint))
        if batch is not None:
            checks.append(await self._submit_check(batch, site, f"{name} submit", try_submit=answered))
        close = getattr(batch.executor, "close", None) if batch else None
        if close is not None and asyncio.iscoroutinefunction(close):
            await close()
        return checks

    async def _submit_check(self, batch: BatchProvider, site: SiteConfig, name: str, *, try_submit: bool) -> Check:
        env = site.batch.environment or None
        probe = _probe_submission(site)
        command = batch.submit_argv(probe)[0]
        try:
            found = await batch.executor.run(
                ["sh", "-c", 'command -v "$1"', "sh", command], timeout=self.timeout, env=env
            )
        except CommandError as exc:
            return Check(name, "fail", f"{site.name}: cannot look for {command}: {exc}")
        if not found.ok:
            return Check(
                name,
                "fail",
                f"{site.name}: the submit command {command} is not on the site's PATH",
                "Install the scheduler's client commands, or set batch.bin_dir (PBS, SGE, LSF).",
            )
        if site.provider != "slurm" or not try_submit:
            return Check(name, "ok", f"{command} is {found.stdout.strip()}")
        script = render_batch_script(
            PilotScript(batch.directive_prefix, batch.directives(probe), ["doctor-0"], "command", ["true"])
        )
        try:
            res = await batch.executor.run(["sbatch", "--test-only"], timeout=self.timeout, stdin=script, env=env)
        except CommandError as exc:
            return Check(name, "fail", f"{site.name}: sbatch --test-only failed: {exc}")
        if not res.ok:
            return Check(
                name,
                "fail",
                f"{site.name}: Slurm refuses a pilot job of this site's slot ({_shape(site)}): {_tail(res)}",
                "Check the slot (sites[].slot: cpus, memory_mb, gpus; walltime) against the nodes of the partition, "
                "and batch.partition, account, qos, extra_directives "
                "(`sinfo -o '%P %c %m %G %l'`, `sacctmgr show assoc user=$USER`).",
            )
        last = _tail(res).splitlines()[-1]
        return Check(name, "ok", f"sbatch --test-only accepts a pilot job of the site's slot ({_shape(site)}): {last}")

    def check_joins(self, sites: Sequence[SiteConfig]) -> list[Check]:
        sites = [s for s in sites if self.config.joins_pool(s)]
        if not sites:
            return [Check("pilots join", "skip", 'the payload is "command" at every site: pilots do not join the pool')]
        url = self.ledger_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            return [Check("pilots join", "skip", f"no ledger yet at {url}: the factory has not run")]
        from ..ledger import Ledger

        try:
            ledger = Ledger.open(url, migrate=False)
            try:
                pilots = ledger.pilots(factory=self.config.factory.name)
            finally:
                ledger.close()
        except Exception as exc:
            return [Check("pilots join", "warn", f"cannot read the ledger at {url}: {exc}")]
        names = {s.name for s in sites}
        cfg = self.config.model_copy(update={"sites": tuple(s for s in self.config.sites if s.name in names)})
        return join_checks(cfg, pilots, self.now)

    async def check_offline(self) -> list[Check]:
        pool = self.config.pool
        if not pool.offline_ads:
            return [Check("offline ads", "skip", "pool.offline_ads is off")]

        def offline_ads() -> list[Any]:
            import htcondor2

            constraint = f'Offline =?= true && CampusFactoryName == "{self.config.factory.name}"'
            coll = htcondor2.Collector(pool.collector)
            return list(
                coll.query(htcondor2.AdType.Startd, constraint=constraint, projection=["Name", "CondorVersion"])
            )

        try:
            ads = await _in_thread(offline_ads, self.timeout)
        except Exception as exc:
            return [Check("offline ads", "fail", f"cannot query the collector: {exc}")]
        negotiator, error = await self.negotiator_address()
        value, error = await self.remote_knob(negotiator, "NEGOTIATOR_PRE_JOB_RANK") if negotiator else (None, error)
        checks = [rank_check(value, error)]
        lacking = [str(a.get("Name")) for a in ads if a.get("CondorVersion") is None]
        if not ads:
            checks.append(
                Check(
                    "offline ads: published",
                    "warn",
                    "none of this factory's offline ads is in the collector",
                    "Run the factory; it publishes them every cycle. Publishing needs ADVERTISE_STARTD for the "
                    "factory's own identity (a token in its tokens.d) in the collector's ALLOW_ADVERTISE_STARTD.",
                )
            )
        elif lacking:
            checks.append(
                Check(
                    "offline ads: published",
                    "fail",
                    f"offline ads without CondorVersion: {', '.join(lacking)}: condor_submit's default "
                    "Requirements evaluate to ERROR on them and they are never matched",
                    "Do not remove CondorVersion from the slot ad (sites[].slot.attributes).",
                )
            )
        else:
            checks.append(Check("offline ads: published", "ok", f"{len(ads)} offline ad(s), each with CondorVersion"))
        return checks

    # -- all --------------------------------------------------------------------------------
    async def run(self, only_sites: Sequence[str] = ()) -> list[Check]:
        sites = [s for s in self.config.sites if not only_sites or s.name in only_sites]
        checks = [await self.check_collector()]
        if self.reachable:
            checks.append(await self.check_schedds())
        if self.config.pool.flock_from:
            from .flocking import flock_checks

            checks.extend(await flock_checks(self, self.config))
        glidein_sites = [s for s in sites if self.config.joins_pool(s)]
        if glidein_sites:
            seen: set[str] = set()
            for site in glidein_sites:
                ident = self.config.pilot.token.identity.replace("{site}", site.name)
                if site.enabled and ident not in seen:
                    seen.add(ident)
                    checks.append(await self.check_token(site))
        else:
            checks.append(Check("pilot token", "skip", 'the payload is "command" at every site: no token is minted'))
        for result in await asyncio.gather(*(self.check_site(s) for s in sites)):
            checks.extend(result)
        checks.extend(self.check_joins(sites))
        if self.reachable:
            checks.extend(await idle_checks(self, sites))
            checks.extend(await self.check_offline())
        else:
            checks.extend(idle_timeout_checks(self.config, sites, None, "the collector did not answer"))
        return checks
