"""Helpers of the reliability tests: hostile values (hypothesis strategies whose payloads try to
create a sentinel file), and a recording executor that plays a Slurm site and the token minting
command.

:class:`RecordingSlurm` keeps every command and every script it receives; ``sbatch`` answers with a fresh job id and
the job then shows as PENDING in ``squeue`` (array elements too), so the loop keeps a healthy
site; ``condor_token_create`` prints ``token``. Nothing is run.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from campus_factory.transport.executor import CommandResult

SENTINEL_DIR = Path(tempfile.mkdtemp(prefix="cf-sentinel-"))
SENTINEL = SENTINEL_DIR / "PWNED"
TEMPLATES = (
    "$(touch {s})",
    "`touch {s}`",
    '"; touch {s}; echo "',
    "'; touch {s}; echo '",
    "\ntouch {s}\n",
    "x && touch {s} #",
    "'$(touch {s})'",
    '\r\n#SBATCH --wrap="touch {s}"\n',
    "CF_CONFIG_EOF\ntouch {s}\nCF_CONFIG_EOF",
    "CF_TOKEN_EOF\ntouch {s}\n",
    "\\\ntouch {s}",
    "\x00; touch {s}",
    '" || touch {s} || "',
    ']; Owner = "alice"; X = [',
    '"; Owner = "alice',
    'true; Owner = "alice"',
    'true; Owner = "alice"; Requirements = true; Evil = "{s}"',
)
PAYLOADS = [t.format(s=SENTINEL) for t in TEMPLATES]
# no lone surrogates: classad2 segfaults when one is set as a value (a library bug); non-UTF-8
# bytes reach the factory as ClassAd octal escapes instead (see test_non_utf8_ads_are_skipped)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
HOSTILE = st.one_of(
    st.sampled_from(PAYLOADS),
    st.tuples(TEXT, st.sampled_from(PAYLOADS), TEXT).map("".join),
    st.text(st.sampled_from("$`'\"\\;&|<>(){}[]*?!#~ \n\r\t"), max_size=30),
)

_NAME = re.compile(r"^#SBATCH --job-name=(\S+)$", re.M)
_ARRAY = re.compile(r"^#SBATCH --array=0-(\d+)$", re.M)


@dataclass
class Call:
    argv: tuple[str, ...]
    stdin: str | None
    env: Mapping[str, str] | None


@dataclass
class RecordingSlurm:
    token: str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwaWxvdCJ9.c2VjcmV0LXNpZ25hdHVyZQ"
    calls: list[Call] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)
    next_id: int = 1000
    #: sbatch fails and echoes the script it was given on stderr (a chatty wrapper)
    sbatch_fails_echoing: bool = False
    #: condor_token_create fails, printing the token anyway (stdout) and an error (stderr)
    token_fails: bool = False

    @property
    def scripts(self) -> list[str]:
        return [c.stdin for c in self.calls if c.argv[0] == "sbatch" and c.stdin is not None]

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        args = tuple(argv)
        self.calls.append(Call(args, stdin, env))
        out = ""
        if args[0] == "sbatch" and self.sbatch_fails_echoing:
            lines = [line for line in (stdin or "").splitlines() if self.token in line]
            err = f"sbatch: error: cannot parse the script:\n{stdin}\nsbatch: error: at line: {lines[0]}\n"
            return CommandResult(args, 1, "", err)
        if args[0].endswith("condor_token_create") and self.token_fails:
            return CommandResult(args, 1, self.token + "\n", "SECMAN:2010:Received an error: signing key missing")
        if args[0] == "sbatch":
            assert stdin is not None
            self.next_id += 1
            tag = _NAME.search(stdin)
            array = _ARRAY.search(stdin)
            name = tag.group(1) if tag else "?"
            if array:
                self.queue += [f"{self.next_id}_{i}|PENDING|{i}|None|{name}" for i in range(int(array.group(1)) + 1)]
            else:
                self.queue.append(f"{self.next_id}|PENDING|N/A|None|{name}")
            out = f"{self.next_id}\n"
        elif args[0] == "squeue":
            out = "\n".join(self.queue) + "\n"
        elif args[0].endswith("condor_token_create"):
            out = self.token + "\n"
        return CommandResult(args, 0, out, "")


def bash_syntax_ok(script: str, tmp: Path) -> str:
    """``bash -n`` of the script: "" when it parses, else bash's complaint."""
    path = tmp / "check.sh"
    path.write_text(script)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    return "" if proc.returncode == 0 else proc.stderr or f"exit {proc.returncode}"


def run_script(script: str, tmp: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a pilot script as the batch system would, with a minimal environment, inside ``tmp``."""
    path = tmp / "pilot.sh"
    path.write_text(script)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp), "HOME": str(tmp)}
    return subprocess.run(
        ["bash", str(path)], cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
