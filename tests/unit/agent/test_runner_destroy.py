"""Destroying a machine reports "destroying" only while there is something to stop."""

from __future__ import annotations

from typing import Any

from ferry.agent.reconcile import LABEL_MACHINE, StepKind, container_id, plan_host
from ferry.agent.runner import HostIdentity, StepRunner
from ferry.model import DesiredState, MachineState
from ferry.runtime.driver import ContainerState, ContainerStatus

from ...agent_fakes import host_machine


class Host:
    """Driver and network in one fake: records what was stopped and removed."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def stop(self, cid: str, signal: str, timeout: float) -> ContainerStatus:
        self.done.append(f"stop {cid}")
        return ContainerStatus(cid, ContainerState.EXITED, exit_code=0)

    def destroy(self, cid: str) -> None:
        self.done.append(f"destroy {cid}")

    def remove(self, machine_id: str, private_ip: str = "") -> None:
        self.done.append(f"network {machine_id}")


class Reporter:
    def __init__(self) -> None:
        self.states: list[str] = []

    def report_status(self, host_id: str, machine_id: str, state: str, *a: Any, **k: Any) -> None:
        self.states.append(state)


def destroy_once(state: MachineState, running: bool) -> tuple[Host, Reporter]:
    m = host_machine(state=state, desired=DesiredState.DESTROYED, host_ip="10.1.0.3")
    containers = (
        [
            ContainerStatus(
                container_id(m), ContainerState.RUNNING, pid=9, labels={LABEL_MACHINE: m.id}
            )
        ]
        if running
        else []
    )
    [step] = plan_host([m], containers, {}, set(), 0.0)
    assert step.kind is StepKind.DESTROY
    host, reporter = Host(), Reporter()
    runner = StepRunner(
        HostIdentity("ams-1", "ams"),
        host,  # type: ignore[arg-type]
        images=None,  # type: ignore[arg-type]
        network=host,  # type: ignore[arg-type]
        reporter=reporter,
        memory={},
    )
    runner.run(step)
    return host, reporter


def test_a_running_machine_goes_destroying_then_destroyed() -> None:
    host, reporter = destroy_once(MachineState.STARTED, running=True)
    assert reporter.states == ["destroying", "destroyed"]
    assert host.done == ["stop m1-i1", "destroy m1-i1", "network m1"]


def test_a_second_pass_over_a_machine_with_nothing_left_never_says_destroying() -> None:
    # A stale snapshot still shows "destroying" after the first pass reported "destroyed":
    # saying "destroying" again would make its address look taken for a moment.
    host, reporter = destroy_once(MachineState.DESTROYING, running=False)
    assert reporter.states == ["destroyed"]
    assert host.done == ["network m1"]
