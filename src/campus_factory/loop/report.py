"""What one cycle of the loop saw and did (the CLI renders it; the API reads the ledger's copy)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..planner import Plan

__all__ = ["CycleReport"]


@dataclass
class CycleReport:
    started_at: float
    plan: Plan | None = None
    dry_run: bool = False
    submitted: int = 0
    cancelled: int = 0
    adopted: int = 0
    orphans_cancelled: int = 0
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    standby: bool = False  # another factory holds the ledger's lease: nothing was done
