"""The state machine's rules for suspend: from where it may happen and what follows it."""

from __future__ import annotations

import pytest

from ferry.errors import ConflictError
from ferry.model import Action, DesiredState, MachineState, plan_action

S, D = MachineState, DesiredState


def test_only_a_started_machine_can_be_suspended() -> None:
    assert plan_action(S.STARTED, D.STARTED, Action.SUSPEND) is D.SUSPENDED
    for state, desired in [
        (S.STOPPED, D.STOPPED),
        (S.CREATED, D.STOPPED),
        (S.STARTING, D.STARTED),
        (S.FAILED, D.STOPPED),
        (S.STARTED, D.STOPPED),  # a stop is under way
    ]:
        with pytest.raises(ConflictError, match="only a started machine can be suspended"):
            plan_action(state, desired, Action.SUSPEND)


def test_suspend_again_is_a_no_op_while_it_is_suspending_or_suspended() -> None:
    for state in (S.STARTED, S.SUSPENDING, S.SUSPENDED):
        assert plan_action(state, D.SUSPENDED, Action.SUSPEND) is D.SUSPENDED
    with pytest.raises(ConflictError):
        plan_action(S.STOPPED, D.SUSPENDED, Action.SUSPEND)  # its process had exited


def test_what_a_suspended_machine_allows() -> None:
    assert plan_action(S.SUSPENDED, D.SUSPENDED, Action.START) is D.STARTED
    assert plan_action(S.SUSPENDED, D.SUSPENDED, Action.STOP) is D.STOPPED
    assert plan_action(S.SUSPENDED, D.SUSPENDED, Action.RESTART) is D.STARTED
    assert plan_action(S.SUSPENDED, D.SUSPENDED, Action.UPDATE) is D.STOPPED
    assert plan_action(S.SUSPENDED, D.SUSPENDED, Action.DESTROY) is D.DESTROYED
    with pytest.raises(ConflictError, match="cannot be signalled"):
        plan_action(S.SUSPENDED, D.SUSPENDED, Action.SIGNAL)


def test_destroying_a_machine_mid_suspend_needs_force() -> None:
    with pytest.raises(ConflictError, match="refusing to destroy"):
        plan_action(S.SUSPENDING, D.SUSPENDED, Action.DESTROY)
    assert plan_action(S.SUSPENDING, D.SUSPENDED, Action.DESTROY, force=True) is D.DESTROYED
