"""The SSH executor against a real OpenSSH server on 127.0.0.1 (marker `ssh`), and the Slurm
provider driven through it (a login node in front of the Slurm test cluster)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from tests.providers import conftest as provider_fixtures
from tests.providers.conftest import Sshd

from campus_factory.config import TransportOptions, parse_config
from campus_factory.domain import PilotRequest
from campus_factory.errors import CommandError, CommandTimeout
from campus_factory.providers import build_provider
from campus_factory.providers.base import JobState, Submission
from campus_factory.providers.slurm import SlurmProvider
from campus_factory.transport.executor import LocalExecutor
from campus_factory.transport.ssh import SSHExecutor, remote_command

pytestmark = pytest.mark.ssh
sshd = provider_fixtures.sshd  # the session fixture of tests/providers/conftest.py


def executor(server: Sshd, **over: object) -> SSHExecutor:
    options = TransportOptions.model_validate(server.transport(**over))
    return SSHExecutor(options, site="remote", backoff_initial=0.5, backoff_max=2.0)


def run(coro: Awaitable[object]) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_remote_command_is_quoted() -> None:
    assert remote_command(["echo", "a b", "$HOME"]) == "echo CFPID:$$ >&2; exec echo 'a b' '$HOME'"
    assert remote_command(["true"], {"X": "1 2"}).endswith("exec env 'X=1 2' true")
    with pytest.raises(ValueError):
        remote_command(["true"], {"BAD NAME": "x"})


def test_commands_run_with_arguments_stdin_env_and_exit_codes(sshd: Sshd) -> None:
    async def main() -> None:
        ex = executor(sshd)
        try:
            tricky = ["it's", "a b", "$(touch /tmp/cf-ssh-pwned)", ";", "*", "\\n"]
            r = await ex.run(["printf", "%s\\n", *tricky], timeout=10)
            assert r.ok and r.stdout.splitlines() == tricky and r.stderr == ""
            assert not Path("/tmp/cf-ssh-pwned").exists()
            r = await ex.run(
                ["sh", "-c", 'cat; echo "$CF_X" >&2; exit 3'], timeout=10, stdin="in\n", env={"CF_X": "v w"}
            )
            assert (r.returncode, r.stdout, r.stderr) == (3, "in\n", "v w\n")
            r = await ex.run(["cat"], timeout=10)  # no stdin: end of file at once
            assert r.ok and r.stdout == ""
            r = await ex.run(["no-such-command-cf"], timeout=10)
            assert r.returncode == 127
            # one connection serves every command, also concurrent ones
            results = await asyncio.gather(*(ex.run(["echo", str(i)], timeout=10) for i in range(10)))
            assert [x.stdout for x in results] == [f"{i}\n" for i in range(10)]
            assert ex.connects == 1
        finally:
            await ex.close()

    run(main())


def test_timeout_kills_the_remote_command(sshd: Sshd) -> None:
    marker = f"{31 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"

    async def main() -> None:
        ex = executor(sshd)
        try:
            started = time.monotonic()
            with pytest.raises(CommandTimeout) as info:
                await ex.run(["sh", "-c", f"echo partial; sleep {marker}; echo never"], timeout=1)
            assert time.monotonic() - started < 30  # the timeout fired, not the >30 s sleep
            assert info.value.stdout == "partial\n" and "CFPID" not in info.value.stderr
            r = await ex.run(["pgrep", "-f", f"sleep {marker}"], timeout=10)
            assert r.returncode == 1, f"the remote command survived its timeout: {r.stdout}"
        finally:
            await ex.close()

    run(main())


def test_host_key_is_checked(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")

    async def main() -> None:
        for known in (wrong, empty):
            ex = executor(sshd, known_hosts=str(known))
            with pytest.raises(CommandError, match="host key not verified"):
                await ex.run(["true"], timeout=10)
            # backing off: the next command fails at once, without a new handshake
            with pytest.raises(CommandError, match="next connection attempt"):
                await ex.run(["true"], timeout=10)
            assert ex.connects == 0

    run(main())


def session_children(server: Sshd) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_a_dead_connection_is_reopened_with_backoff(sshd: Sshd) -> None:
    async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if await check():
                return True
            await asyncio.sleep(0.1)
        return False

    async def main() -> None:
        ex = executor(sshd)
        try:
            assert (await ex.run(["true"], timeout=10)).ok and ex.connects == 1
            # the server side of our connection dies: the next command opens a new connection
            for pid in session_children(sshd):
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.3)
            assert (await ex.run(["echo", "again"], timeout=10)).stdout == "again\n"
            assert ex.connects == 2
            # the whole server goes away: commands fail fast while backing off
            sshd.stop()
            await ex.close()  # the open session would outlive the listener
            with pytest.raises(CommandError, match="cannot connect"):
                await ex.run(["true"], timeout=10)
            with pytest.raises(CommandError, match="next connection attempt"):
                await ex.run(["true"], timeout=10)  # refused at once, without trying (no timed assertion)
            assert ex.connects == 2
            # it comes back: after the backoff the executor reconnects by itself
            sshd.start()

            async def works() -> bool:
                try:
                    return (await ex.run(["true"], timeout=10)).ok
                except CommandError:
                    return False

            assert await until(works, 60)
            assert ex.connects == 3
        finally:
            await ex.close()

    run(main())


# -- the Slurm provider on a login node reached over SSH -------------------------------------
def test_slurm_provider_over_ssh_submits_observes_and_cancels(sshd: Sshd, slurm_cluster, tmp_path: Path) -> None:
    name = "ss" + uuid.uuid4().hex[:6]
    cfg = parse_config(
        {
            "factory": {"name": name, "ledger_url": f"sqlite:///{tmp_path}/ledger.sqlite"},
            "pilot": {"payload": "command", "command": ["sleep", "infinity"]},
            "sites": [
                {
                    "name": "remote",
                    "provider": "slurm",
                    "walltime": "10m",
                    "slot": {"cpus": 1, "memory_mb": 100, "disk_mb": 0},
                    "batch": {
                        "environment": slurm_cluster.env,
                        "work_dir": str(tmp_path / "remote-pilots"),
                        "command_timeout": 20,
                    },
                    "transport": sshd.transport(),
                }
            ],
        }
    )
    provider = build_provider(cfg.sites[0], cfg.pilot, LocalExecutor(), name)
    assert isinstance(provider, SlurmProvider) and isinstance(provider.executor, SSHExecutor)
    ex = provider.executor
    sub_id = uuid.uuid4().hex[:10]
    pilots = tuple(PilotRequest(f"remote-{sub_id}-{i}", 1, 100, 0, 0, 600.0) for i in range(2))
    sub = Submission(sub_id, f"cf-{name}-{sub_id}", pilots)

    def ours() -> list[str]:
        return [line for line in slurm_cluster.squeue() if sub.tag in line]

    async def main() -> float:
        started = time.monotonic()
        ids = [s.job_id for s in await provider.submit(sub)]
        assert len(ids) == 2
        running_after = -1.0
        for _ in range(60):
            obs = await provider.observe(ids, f"cf-{name}-")
            if all(s.state is JobState.RUNNING for s in obs.statuses.values()):
                running_after = time.monotonic() - started
                break
            await asyncio.sleep(0.5)
        assert running_after > 0, obs.statuses
        assert sorted((s.job_id, s.array_index) for s in obs.tagged) == [(ids[0], 0), (ids[1], 1)]
        assert all(r.ok for r in await provider.cancel(ids, graceful=False))
        for _ in range(60):
            obs = await provider.observe(ids, f"cf-{name}-")
            if all(s.state.finished for s in obs.statuses.values()):
                break
            await asyncio.sleep(0.5)
        assert {s.state for s in obs.statuses.values()} == {JobState.CANCELLED}
        assert ex.connects == 1, "every command went over the one connection"
        await ex.close()
        return running_after

    took = asyncio.run(main())
    print(f"Slurm over SSH: 2 pilots RUNNING {took:.1f} s after sbatch")
    assert not [line for line in ours() if "|RUNNING|" in line or "|PENDING|" in line], ours()
    assert (tmp_path / "remote-pilots").is_dir()
