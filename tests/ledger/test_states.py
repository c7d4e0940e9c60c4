"""Tests of the pilot lifecycle table."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campus_factory.errors import InvalidTransition, LedgerError
from campus_factory.ledger.states import (
    LIVE,
    TERMINAL,
    TRANSITIONS,
    PilotEvent,
    PilotState,
    next_state,
)

S, E = PilotState, PilotEvent

FINISH = {E.COMPLETED: S.ENDED, E.FAILED: S.FAILED, E.CANCELLED: S.CANCELLED, E.GONE: S.LOST}


def test_live_and_terminal_partition_the_states() -> None:
    assert {S.ENDED, S.FAILED, S.CANCELLED, S.LOST} == TERMINAL
    assert {S.REQUESTED, S.QUEUED, S.RUNNING, S.JOINED, S.RETIRING} == LIVE
    assert set(S) == LIVE | TERMINAL
    assert not LIVE & TERMINAL


@pytest.mark.parametrize(("state", "event"), list(itertools.product(sorted(LIVE), sorted(FINISH))))
def test_every_live_state_finishes_on_finishing_events(state: PilotState, event: PilotEvent) -> None:
    result = next_state(state, event)
    assert result is FINISH[event]
    assert result in TERMINAL


@pytest.mark.parametrize(("state", "event"), list(itertools.product(sorted(TERMINAL), list(E))))
def test_terminal_states_accept_nothing(state: PilotState, event: PilotEvent) -> None:
    with pytest.raises(InvalidTransition) as info:
        next_state(state, event)
    assert info.value.state == state.value
    assert info.value.event == event.value
    assert isinstance(info.value, LedgerError)
    assert state.value in str(info.value) and event.value in str(info.value)


def test_happy_path() -> None:
    state = S.REQUESTED
    path = [state]
    for event in (E.SUBMITTED, E.STARTED, E.JOINED, E.LEAVE, E.COMPLETED):
        state = next_state(state, event)
        path.append(state)
    assert path == [S.REQUESTED, S.QUEUED, S.RUNNING, S.JOINED, S.RETIRING, S.ENDED]


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (S.REQUESTED, E.STARTED, S.RUNNING),  # adoption of a job already running
        (S.REQUESTED, E.PENDING, S.QUEUED),  # adoption of a job still queued
        (S.REQUESTED, E.SUBMIT_FAILED, S.FAILED),
        (S.REQUESTED, E.LOST_SUBMISSION, S.FAILED),
        (S.REQUESTED, E.LEAVE, S.RETIRING),
        (S.QUEUED, E.PENDING, S.QUEUED),
        (S.QUEUED, E.JOINED, S.JOINED),
        (S.RUNNING, E.PENDING, S.QUEUED),  # requeued
        (S.RUNNING, E.STARTED, S.RUNNING),
        (S.JOINED, E.STARTED, S.JOINED),
        (S.JOINED, E.PENDING, S.QUEUED),
        (S.RETIRING, E.STARTED, S.RETIRING),
        (S.RETIRING, E.JOINED, S.RETIRING),
        (S.RETIRING, E.LEAVE, S.RETIRING),
    ],
)
def test_selected_transitions(state: PilotState, event: PilotEvent, expected: PilotState) -> None:
    assert next_state(state, event) is expected


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.QUEUED, E.SUBMITTED),
        (S.RUNNING, E.SUBMITTED),
        (S.QUEUED, E.SUBMIT_FAILED),
        (S.RUNNING, E.LOST_SUBMISSION),
        (S.JOINED, E.SUBMIT_FAILED),
        (S.RETIRING, E.SUBMITTED),
        (S.REQUESTED, E.JOINED),
    ],
)
def test_undefined_live_transitions_raise(state: PilotState, event: PilotEvent) -> None:
    with pytest.raises(InvalidTransition):
        next_state(state, event)


def test_table_only_leaves_live_states_and_retiring_is_sticky() -> None:
    for (src, _event), dst in TRANSITIONS.items():
        assert src in LIVE
        assert dst in set(S)
        if src is S.RETIRING:
            assert dst is S.RETIRING or dst in TERMINAL


@given(st.lists(st.sampled_from(list(E)), max_size=30), st.sampled_from(list(S)))
def test_any_event_sequence_stays_in_the_machine(events: list[PilotEvent], start: PilotState) -> None:
    state = start
    for event in events:
        was_terminal = state in TERMINAL
        try:
            new = next_state(state, event)
        except InvalidTransition:
            assert (state, event) not in TRANSITIONS
            continue
        assert not was_terminal, f"terminal {state} accepted {event}"
        assert isinstance(new, PilotState)
        state = new
    if state in TERMINAL:
        for event in E:
            with pytest.raises(InvalidTransition):
                next_state(state, event)
