"""The agent's decisions for suspend: freeze, report, resume, and never restart a frozen machine."""

from __future__ import annotations

import pytest

from ferry.agent.reconcile import MachineMemory, StepKind, plan_host
from ferry.model import DesiredState, MachineState
from ferry.runtime.driver import ContainerState

from .test_reconcile import container, machine


def test_a_running_machine_wanted_suspended_is_frozen() -> None:
    m = machine(desired=DesiredState.SUSPENDED, state=MachineState.STARTED, generation=1)
    [step] = plan_host([m], [container(m, ContainerState.RUNNING)], {}, set(), 0.0)
    assert (step.kind, step.reason) == (
        StepKind.SUSPEND,
        "machine m1 should be suspended but is running",
    )


def test_a_frozen_machine_shown_suspended_is_left_alone_even_by_a_fresh_agent() -> None:
    m = machine(desired=DesiredState.SUSPENDED, state=MachineState.SUSPENDED, generation=3)
    paused = [container(m, ContainerState.PAUSED)]
    assert plan_host([m], paused, {}, set(), 0.0) == []
    assert plan_host([m], paused, {"m1": MachineMemory(acted_generation=1)}, set(), 0.0) == []


def test_a_frozen_machine_still_shown_suspending_is_reported_suspended() -> None:
    """The agent was killed between the freeze and its report."""
    m = machine(desired=DesiredState.SUSPENDED, state=MachineState.SUSPENDING, generation=1)
    [step] = plan_host([m], [container(m, ContainerState.PAUSED)], {}, set(), 0.0)
    assert (step.kind, step.report_state) == (StepKind.REPORT, MachineState.SUSPENDED)


def test_a_suspended_machine_whose_process_is_gone_is_reported_stopped_not_started() -> None:
    m = machine(desired=DesiredState.SUSPENDED, state=MachineState.SUSPENDED, generation=1)
    [step] = plan_host([m], [], {}, set(), 0.0)
    assert (step.kind, step.report_state) == (StepKind.REPORT, MachineState.STOPPED)
    gone = machine(desired=DesiredState.SUSPENDED, state=MachineState.STOPPED, generation=1)
    assert plan_host([gone], [], {}, set(), 0.0) == []


def test_a_machine_that_exited_before_the_freeze_is_stopped() -> None:
    m = machine(desired=DesiredState.SUSPENDED, state=MachineState.STARTED, generation=1)
    [step] = plan_host([m], [container(m, ContainerState.EXITED, 0)], {}, set(), 0.0)
    assert step.kind is StepKind.STOP


def test_start_of_a_frozen_machine_resumes_it() -> None:
    m = machine(desired=DesiredState.STARTED, state=MachineState.SUSPENDED, generation=2)
    memory = {"m1": MachineMemory(acted_generation=2)}
    [step] = plan_host([m], [container(m, ContainerState.PAUSED)], memory, set(), 0.0)
    assert (step.kind, step.reason) == (StepKind.RESUME, "machine m1 is suspended: resuming it")


def test_restart_of_a_frozen_machine_replaces_its_process() -> None:
    m = machine(desired=DesiredState.STARTED, state=MachineState.SUSPENDED, generation=3)
    memory = {"m1": MachineMemory(acted_generation=2)}
    [step] = plan_host([m], [container(m, ContainerState.PAUSED)], memory, set(), 0.0)
    assert step.kind is StepKind.RESTART


@pytest.mark.parametrize("desired", [DesiredState.STOPPED, DesiredState.DESTROYED])
def test_stop_and_destroy_of_a_frozen_machine_act_on_its_container(
    desired: DesiredState,
) -> None:
    m = machine(desired=desired, state=MachineState.SUSPENDED, generation=1)
    [step] = plan_host([m], [container(m, ContainerState.PAUSED)], {}, set(), 0.0)
    expected = StepKind.STOP if desired is DesiredState.STOPPED else StepKind.DESTROY
    assert step.kind is expected
    if expected is StepKind.STOP:
        assert step.reason == "machine m1 should be stopped but is suspended"


def test_an_updated_suspended_machine_stops_its_old_frozen_container() -> None:
    old = machine(desired=DesiredState.STOPPED, state=MachineState.SUSPENDED, instance="i1")
    new = machine(desired=DesiredState.STOPPED, state=MachineState.SUSPENDED, instance="i2")
    [step] = plan_host([new], [container(old, ContainerState.PAUSED)], {}, set(), 0.0)
    assert step.kind is StepKind.STOP


def test_a_snapshot_read_before_the_agents_own_report_does_not_report_again() -> None:
    """A resume reported ``started`` (making revision 7); a snapshot read before that
    still shows ``suspended`` and must not send the same report twice."""
    stale = machine(desired=DesiredState.STARTED, state=MachineState.SUSPENDED, generation=2)
    stale = stale.model_copy(update={"revision": 6})
    running = [container(stale, ContainerState.RUNNING)]
    memory = {"m1": MachineMemory(acted_generation=2, reported=(7, MachineState.STARTED))}
    assert plan_host([stale], running, memory, set(), 0.0) == []
    other = {"m1": MachineMemory(acted_generation=2, reported=(7, MachineState.STOPPED))}
    [step] = plan_host([stale], running, other, set(), 0.0)
    assert (step.kind, step.report_state) == (StepKind.REPORT, MachineState.STARTED)
    current = stale.model_copy(update={"revision": 7})
    [step] = plan_host([current], running, memory, set(), 0.0)
    assert step.report_state is MachineState.STARTED  # the store shows otherwise: say it again
