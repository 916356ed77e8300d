"""The machine state machine: which user actions are allowed from which state.

Pure: given the current state and an action, return the desired state to
record or raise ``ConflictError`` naming why the change is impossible.
"""

from __future__ import annotations

from enum import StrEnum

from ferry.errors import ConflictError
from ferry.model.machine import DesiredState, MachineState


class Action(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    UPDATE = "update"
    SIGNAL = "signal"
    DESTROY = "destroy"


_GONE = {MachineState.DESTROYING, MachineState.DESTROYED}
_RUNNING = {MachineState.STARTING, MachineState.STARTED, MachineState.RESTARTING}


def plan_action(
    state: MachineState, desired: DesiredState, action: Action, *, force: bool = False
) -> DesiredState:
    """Return the desired state after ``action`` on a machine in ``state``.

    Idempotent where Fly is (starting a started machine is fine). Raises
    ``ConflictError`` for changes that cannot happen, e.g. starting a destroyed
    machine or destroying a running one without ``force``.
    """
    if state in _GONE or desired is DesiredState.DESTROYED:
        raise ConflictError(
            f"machine is {state.value}; it cannot be {_past(action)}",
            hint="create a new machine instead",
        )
    if action is Action.START:
        return DesiredState.STARTED
    if action is Action.STOP:
        return DesiredState.STOPPED
    if action in (Action.RESTART, Action.SIGNAL):
        if state not in _RUNNING and desired is not DesiredState.STARTED:
            raise ConflictError(
                f"machine is {state.value}; only a started machine can be {_past(action)}",
                hint="start it first",
            )
        return DesiredState.STARTED
    if action is Action.UPDATE:
        return desired
    if action is Action.DESTROY:
        if state in _RUNNING and not force:
            raise ConflictError(
                f"machine is {state.value}; refusing to destroy a running machine",
                hint="stop it first or pass force=true",
            )
        return DesiredState.DESTROYED
    raise AssertionError(f"unhandled action {action}")  # pragma: no cover


def _past(action: Action) -> str:
    return {
        Action.START: "started",
        Action.STOP: "stopped",
        Action.RESTART: "restarted",
        Action.UPDATE: "updated",
        Action.SIGNAL: "signalled",
        Action.DESTROY: "destroyed",
    }[action]
