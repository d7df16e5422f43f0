"""ISA-88 procedural state machine, exhaustively against the standard's transition matrix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isa95.errors import IllegalTransition
from isa95.statemachine import Command, ProceduralState, ProceduralStateMachine

# ANSI/ISA-88.00.01 state transition matrix, one row per state, columns:
#             Reset     Start     Stop       Hold       Restart      Abort      Pause     Resume
MATRIX = {
    "Idle": [None, "Running", None, None, None, None, None, None],
    "Running": [None, None, "Stopping", "Holding", None, "Aborting", "Pausing", None],
    "Complete": ["Idle", None, None, None, None, None, None, None],
    "Pausing": [None, None, "Stopping", "Holding", None, "Aborting", None, "Running"],
    "Paused": [None, None, "Stopping", "Holding", None, "Aborting", None, "Running"],
    "Holding": [None, None, "Stopping", None, None, "Aborting", None, None],
    "Held": [None, None, "Stopping", None, "Restarting", "Aborting", None, None],
    "Restarting": [None, None, "Stopping", "Holding", None, "Aborting", None, None],
    "Stopping": [None, None, None, None, None, "Aborting", None, None],
    "Stopped": ["Idle", None, None, None, None, "Aborting", None, None],
    "Aborting": [None, None, None, None, None, None, None, None],
    "Aborted": ["Idle", None, None, None, None, None, None, None],
}
COLUMNS = ["Reset", "Start", "Stop", "Hold", "Restart", "Abort", "Pause", "Resume"]
# "State complete" column: where a state goes when its logic finishes.
COMPLETES = {
    "Running": "Complete",
    "Pausing": "Paused",
    "Holding": "Held",
    "Restarting": "Running",
    "Stopping": "Stopped",
    "Aborting": "Aborted",
}

CASES = [
    (state, command, row[i]) for state, row in MATRIX.items() for i, command in enumerate(COLUMNS)
]


def test_matrix_covers_every_state_and_command() -> None:
    assert set(MATRIX) == {s.value for s in ProceduralState}
    assert set(COLUMNS) == {c.value for c in Command}
    assert len(CASES) == 12 * 8


@pytest.mark.parametrize(("state", "command", "expected"), CASES)
def test_every_state_times_every_command(state: str, command: str, expected: str | None) -> None:
    machine = ProceduralStateMachine("phase", ProceduralState(state))
    if expected is None:
        with pytest.raises(IllegalTransition, match=f"{command} is not allowed in state {state}"):
            machine.command(command)
        assert machine.state == state and machine.history == []
    else:
        assert machine.command(command) == expected
        assert machine.history == [(ProceduralState(state), command, ProceduralState(expected))]


@pytest.mark.parametrize("state", list(MATRIX))
def test_state_complete(state: str) -> None:
    machine = ProceduralStateMachine("phase", ProceduralState(state))
    if state in COMPLETES:
        assert machine.complete() == COMPLETES[state]
    else:
        with pytest.raises(IllegalTransition, match="nothing to complete"):
            machine.complete()
        assert machine.state == state


def test_unknown_command_and_observer() -> None:
    seen: list[tuple[str, str, str, str]] = []
    machine = ProceduralStateMachine("UP1", on_change=lambda n, a, b, c: seen.append((n, a, b, c)))
    with pytest.raises(IllegalTransition, match="not an ISA-88 command"):
        machine.command("Launch")
    machine.command("Start")
    machine.complete()
    assert machine.is_final
    assert seen == [
        ("UP1", "Idle", "Running", "Start"),
        ("UP1", "Running", "Complete", "state complete"),
    ]


@given(st.lists(st.one_of(st.sampled_from(COLUMNS), st.just("complete")), max_size=40))
def test_random_sequences_follow_the_matrix(steps: list[str]) -> None:
    machine = ProceduralStateMachine("phase")
    state = "Idle"
    for step in steps:
        if step == "complete":
            expected = COMPLETES.get(state)
            if expected is None:
                with pytest.raises(IllegalTransition):
                    machine.complete()
            else:
                machine.complete()
                state = expected
        else:
            expected = MATRIX[state][COLUMNS.index(step)]
            if expected is None:
                with pytest.raises(IllegalTransition):
                    machine.command(step)
            else:
                machine.command(step)
                state = expected
        assert machine.state == state
