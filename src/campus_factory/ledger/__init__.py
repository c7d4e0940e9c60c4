"""The ledger: pilots, their lifecycle, and accounting, in SQLite or PostgreSQL."""

from .states import LIVE, TERMINAL, PilotEvent, PilotState, next_state
from .store import CycleRecord, Ledger, PilotRecord, TransitionRecord, Update

__all__ = [
    "LIVE",
    "TERMINAL",
    "CycleRecord",
    "Ledger",
    "PilotEvent",
    "PilotRecord",
    "PilotState",
    "TransitionRecord",
    "Update",
    "next_state",
]
