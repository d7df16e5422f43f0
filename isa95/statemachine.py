"""The ISA-88 procedural state machine (ANSI/ISA-88.00.01, procedural element states).

``TRANSITIONS`` is the standard's state transition matrix: for each state,
the commands it accepts and the state each one leads to. ``STATE_COMPLETE``
gives where a transient ("-ing") state or Running goes when its logic
finishes. Anything else is an illegal transition and raises.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from isa95.errors import IllegalTransition

__all__ = ["STATE_COMPLETE", "TRANSITIONS", "Command", "ProceduralState", "ProceduralStateMachine"]


class ProceduralState(enum.StrEnum):
    """Procedural element states."""

    IDLE = "Idle"
    RUNNING = "Running"
    COMPLETE = "Complete"
    PAUSING = "Pausing"
    PAUSED = "Paused"
    HOLDING = "Holding"
    HELD = "Held"
    RESTARTING = "Restarting"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ABORTING = "Aborting"
    ABORTED = "Aborted"


class Command(enum.StrEnum):
    """Procedural commands."""

    START = "Start"
    STOP = "Stop"
    HOLD = "Hold"
    RESTART = "Restart"
    ABORT = "Abort"
    RESET = "Reset"
    PAUSE = "Pause"
    RESUME = "Resume"


S, C = ProceduralState, Command
TRANSITIONS: dict[ProceduralState, dict[Command, ProceduralState]] = {
    S.IDLE: {C.START: S.RUNNING},
    S.RUNNING: {C.PAUSE: S.PAUSING, C.HOLD: S.HOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.COMPLETE: {C.RESET: S.IDLE},
    S.PAUSING: {C.RESUME: S.RUNNING, C.HOLD: S.HOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.PAUSED: {C.RESUME: S.RUNNING, C.HOLD: S.HOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.HOLDING: {C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.HELD: {C.RESTART: S.RESTARTING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.RESTARTING: {C.HOLD: S.HOLDING, C.STOP: S.STOPPING, C.ABORT: S.ABORTING},
    S.STOPPING: {C.ABORT: S.ABORTING},
    S.STOPPED: {C.RESET: S.IDLE, C.ABORT: S.ABORTING},
    S.ABORTING: {},
    S.ABORTED: {C.RESET: S.IDLE},
}

STATE_COMPLETE: dict[ProceduralState, ProceduralState] = {
    S.RUNNING: S.COMPLETE,
    S.PAUSING: S.PAUSED,
    S.HOLDING: S.HELD,
    S.RESTARTING: S.RUNNING,
    S.STOPPING: S.STOPPED,
    S.ABORTING: S.ABORTED,
}

FINAL_STATES = frozenset({S.COMPLETE, S.STOPPED, S.ABORTED})


@dataclass
class ProceduralStateMachine:
    """The state of one procedural element (procedure, unit procedure, operation, phase)."""

    name: str
    state: ProceduralState = ProceduralState.IDLE
    on_change: Callable[[str, ProceduralState, ProceduralState, str], None] | None = None
    history: list[tuple[ProceduralState, str, ProceduralState]] = field(default_factory=list)

    def allowed(self) -> list[Command]:
        """Commands accepted in the current state."""
        return list(TRANSITIONS[self.state])

    def command(self, command: Command | str) -> ProceduralState:
        """Apply ``command``; an illegal one raises :class:`IllegalTransition`, changing nothing."""
        try:
            cmd = Command(command)
        except ValueError as exc:
            raise IllegalTransition(f"{command!r} is not an ISA-88 command") from exc
        target = TRANSITIONS[self.state].get(cmd)
        if target is None:
            allowed = ", ".join(self.allowed()) or "none"
            raise IllegalTransition(
                f"{self.name}: command {cmd} is not allowed in state {self.state} "
                f"(allowed: {allowed})"
            )
        return self._move(target, str(cmd))

    def complete(self) -> ProceduralState:
        """The element's logic finished: Running → Complete, Holding → Held, and so on."""
        target = STATE_COMPLETE.get(self.state)
        if target is None:
            raise IllegalTransition(f"{self.name}: state {self.state} has nothing to complete")
        return self._move(target, "state complete")

    def _move(self, target: ProceduralState, cause: str) -> ProceduralState:
        before = self.state
        self.state = target
        self.history.append((before, cause, target))
        if self.on_change is not None:
            self.on_change(self.name, before, target, cause)
        return target

    @property
    def is_final(self) -> bool:
        """True in Complete, Stopped or Aborted."""
        return self.state in FINAL_STATES
