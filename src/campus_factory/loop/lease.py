"""One acting factory per name: the ledger's lease, as the loop takes, renews and gives it back.

Several factory processes may share a ledger (one per group of sites, or a standby beside the
active one). Each cycle the acting factory renews its lease; a standby finds it held and does
nothing. A lease whose holder is a process on this host that is gone (or this very process: an
earlier factory object that crashed) is taken over at once, not after it expires.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from ..ledger import Ledger
from ..ledger.lease import acquire_lease, current_lease, release_lease

__all__ = ["LeaseKeeper", "new_holder"]


def new_holder() -> str:
    """Who this process is when it holds a lease: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class LeaseKeeper:
    """The lease of the factory ``name`` on ``ledger``, held for ``ttl`` seconds at a time."""

    ledger: Ledger
    name: str
    ttl: float
    holder: str = field(default_factory=new_holder)
    until: float | None = None  # when the lease we hold lapses

    def take(self, now: float) -> tuple[bool, bool]:
        """Take or renew the lease: (held, lapsed). ``lapsed``: it was not held a moment ago, so
        another factory may have acted in between. The holder is read only when the lease cannot
        be taken: a renewal is one statement."""
        lapsed = self.until is None or now > self.until
        held = acquire_lease(self.ledger, self.name, self.holder, self.ttl, now)
        if not held and self._release_gone(now):
            held = acquire_lease(self.ledger, self.name, self.holder, self.ttl, now)
        self.until = now + self.ttl if held else None
        return held, lapsed

    def _release_gone(self, now: float) -> bool:
        """Give up the lease of a holder on this host that is gone, or is this very process (an
        earlier factory object that crashed); True when one was released."""
        held = current_lease(self.ledger, self.name)
        if held is None or held.holder == self.holder or held.expires_at < now:
            return False
        host, _, rest = held.holder.partition(":")
        pid = rest.split(":", 1)[0]
        if host == socket.gethostname() and pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            release_lease(self.ledger, self.name, held.holder)
            return True
        return False

    def release(self) -> None:
        release_lease(self.ledger, self.name, self.holder)
