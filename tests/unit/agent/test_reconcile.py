"""The agent's pure reconcile decision: one step per machine, each with a reason."""

from __future__ import annotations

from datetime import UTC, datetime

from ferry.agent.reconcile import (
    LABEL_INSTANCE,
    LABEL_MACHINE,
    MachineMemory,
    StepKind,
    container_id,
    plan_host,
    should_restart,
)
from ferry.model import DesiredState, Machine, MachineConfig, MachineState, RestartPolicy
from ferry.runtime.driver import ContainerState, ContainerStatus

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def machine(
    mid: str = "m1",
    *,
    desired: DesiredState = DesiredState.STARTED,
    state: MachineState = MachineState.CREATED,
    instance: str = "i1",
    generation: int = 0,
    signal: str | None = None,
    restart: str = "on-failure",
) -> Machine:
    return Machine(
        id=mid,
        name=mid,
        app_name="app",
        state=state,
        desired_state=desired,
        region="ams",
        instance_id=instance,
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip="10.77.17.2",
        config=MachineConfig(image="r/app@sha256:00", restart=RestartPolicy(policy=restart)),  # type: ignore[arg-type]
        host_id="ams-1",
        created_at=NOW,
        updated_at=NOW,
        generation=generation,
        pending_signal=signal,
    )


def container(m: Machine, state: ContainerState, exit_code: int | None = None) -> ContainerStatus:
    return ContainerStatus(
        container_id=container_id(m),
        state=state,
        exit_code=exit_code,
        labels={LABEL_MACHINE: m.id, LABEL_INSTANCE: m.instance_id},
    )


def test_new_machine_is_started() -> None:
    steps = plan_host([machine()], [], {}, set(), 0.0)
    assert [(s.kind, s.machine_id) for s in steps] == [(StepKind.START, "m1")]
    assert "should be started" in steps[0].reason


def test_running_machine_that_shows_started_needs_nothing() -> None:
    m = machine(state=MachineState.STARTED)
    mem = {"m1": MachineMemory(acted_generation=0)}
    assert plan_host([m], [container(m, ContainerState.RUNNING)], mem, set(), 0.0) == []


def test_busy_machines_are_left_alone() -> None:
    assert plan_host([machine()], [], {}, {"m1"}, 0.0) == []


def test_new_version_replaces_the_old_container() -> None:
    old = machine(instance="i1", state=MachineState.STARTED)
    new = machine(instance="i2", state=MachineState.STARTED)
    steps = plan_host([new], [container(old, ContainerState.RUNNING)], {}, set(), 0.0)
    assert steps[0].kind is StepKind.START
    assert "new version i2" in steps[0].reason
    assert steps[0].containers[0].container_id == container_id(old)


def test_desired_stopped_stops_a_running_container() -> None:
    m = machine(desired=DesiredState.STOPPED, state=MachineState.STARTED)
    steps = plan_host([m], [container(m, ContainerState.RUNNING)], {}, set(), 0.0)
    assert steps[0].kind is StepKind.STOP


def test_exited_container_is_handed_to_the_restart_policy() -> None:
    m = machine(state=MachineState.STARTED)
    steps = plan_host([m], [container(m, ContainerState.EXITED, 3)], {}, set(), 0.0)
    assert steps[0].kind is StepKind.EXITED
    assert "exited with code 3" in steps[0].reason


def test_backoff_delays_a_restart() -> None:
    m = machine(state=MachineState.STARTED)
    mem = {"m1": MachineMemory(next_start_at=10.0)}
    assert plan_host([m], [container(m, ContainerState.EXITED, 1)], mem, set(), 5.0) == []


def test_gave_up_machine_waits_for_a_new_start_request() -> None:
    m = machine(state=MachineState.FAILED, generation=2)
    mem = {"m1": MachineMemory(gave_up_generation=2, acted_generation=2)}
    assert plan_host([m], [], mem, set(), 0.0) == []
    again = machine(state=MachineState.FAILED, generation=3)
    assert plan_host([again], [], mem, set(), 0.0)[0].kind is StepKind.START


def test_restart_and_signal_requests_act_once_per_generation() -> None:
    m = machine(state=MachineState.STARTED, generation=5)
    mem = {"m1": MachineMemory(acted_generation=4)}
    running = [container(m, ContainerState.RUNNING)]
    assert plan_host([m], running, mem, set(), 0.0)[0].kind is StepKind.RESTART
    sig = machine(state=MachineState.STARTED, generation=5, signal="SIGUSR1")
    step = plan_host([sig], running, mem, set(), 0.0)[0]
    assert step.kind is StepKind.SIGNAL and "SIGUSR1" in step.reason


def test_destroy_and_orphans() -> None:
    m = machine(desired=DesiredState.DESTROYED, state=MachineState.STARTED)
    orphan = machine("zz")
    steps = plan_host(
        [m],
        [container(m, ContainerState.RUNNING), container(orphan, ContainerState.RUNNING)],
        {},
        set(),
        0.0,
    )
    assert {(s.kind, s.machine_id) for s in steps} == {
        (StepKind.DESTROY, "m1"),
        (StepKind.REMOVE_ORPHAN, "zz"),
    }


def test_running_machine_reported_as_stopped_is_corrected() -> None:
    m = machine(state=MachineState.STOPPED)
    mem = {"m1": MachineMemory(acted_generation=0)}
    step = plan_host([m], [container(m, ContainerState.RUNNING)], mem, set(), 0.0)[0]
    assert step.kind is StepKind.REPORT and step.report_state is MachineState.STARTED


def test_restart_policies() -> None:
    always = RestartPolicy(policy="always")
    on_failure = RestartPolicy(policy="on-failure", max_retries=2)
    never = RestartPolicy(policy="no")
    assert should_restart(always, 0, 100)
    assert should_restart(on_failure, 1, 1)
    assert not should_restart(on_failure, 1, 2)
    assert not should_restart(on_failure, 0, 0)
    assert not should_restart(never, 137, 0)
