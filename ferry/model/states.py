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
    SUSPEND = "suspend"


_GONE = {MachineState.DESTROYING, MachineState.DESTROYED}
_RUNNING = {MachineState.STARTING, MachineState.STARTED, MachineState.RESTARTING}
_SUSPENDABLE = {MachineState.STARTED, MachineState.SUSPENDING, MachineState.SUSPENDED}


def plan_action(
    state: MachineState, desired: DesiredState, action: Action, *, force: bool = False
) -> DesiredState:
    """Return the desired state after ``action`` on a machine in ``state``.

    Idempotent where Fly is (starting a started machine is fine). Raises
    ``ConflictError`` for changes that cannot happen, e.g. starting a destroyed
    machine or destroying a running one without ``force``.

    Suspend: only a started machine (desired and actual) can be suspended;
    suspending one already desired suspended is a no-op. A suspended machine
    can be started (resumed), stopped, restarted (fresh process) and destroyed
    (no ``force``: nothing runs); an update drops its frozen memory, so it
    becomes desired ``stopped`` and uses the new config at its next start;
    a signal is refused (a frozen process would only see it on resume).
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
    if action is Action.SUSPEND:
        if desired is DesiredState.SUSPENDED and state in _SUSPENDABLE:
            return desired
        if state is not MachineState.STARTED or desired is not DesiredState.STARTED:
            raise ConflictError(
                f"machine is {state.value}; only a started machine can be suspended",
                hint="start it first",
            )
        return DesiredState.SUSPENDED
    if action is Action.RESTART and desired is DesiredState.SUSPENDED:
        return DesiredState.STARTED
    if action in (Action.RESTART, Action.SIGNAL):
        if desired is DesiredState.SUSPENDED:
            raise ConflictError(
                f"machine is {state.value}; a suspended machine cannot be signalled",
                hint="start it first",
            )
        if state not in _RUNNING and desired is not DesiredState.STARTED:
            raise ConflictError(
                f"machine is {state.value}; only a started machine can be {_past(action)}",
                hint="start it first",
            )
        return DesiredState.STARTED
    if action is Action.UPDATE:
        return DesiredState.STOPPED if desired is DesiredState.SUSPENDED else desired
    if action is Action.DESTROY:
        if (state in _RUNNING or state is MachineState.SUSPENDING) and not force:
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
        Action.SUSPEND: "suspended",
    }[action]
