"""The runner's suspend and resume steps: what the driver is asked and what the user sees."""

from __future__ import annotations

from ferry.agent.network_hook import MachineNetwork
from ferry.agent.reconcile import MachineMemory, StepKind, container_id, plan_host
from ferry.agent.runner import HostIdentity, StepRunner
from ferry.errors import RuntimeFailure
from ferry.model import DesiredState, MachineState
from ferry.runtime.driver import ContainerState, ContainerStatus

from .test_reconcile import container, machine
from .test_runner_stop import RecordingReporter


class FreezingDriver:
    """Records pause/resume/stop calls; a stop returns an exited status."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def pause(self, cid: str) -> ContainerStatus:
        self.calls.append(("pause", cid))
        return ContainerStatus(cid, ContainerState.PAUSED)

    def resume(self, cid: str) -> ContainerStatus:
        self.calls.append(("resume", cid))
        return ContainerStatus(cid, ContainerState.RUNNING)

    def stop(self, cid: str, signal: str, timeout: float) -> ContainerStatus:
        self.calls.append(("stop", cid))
        return ContainerStatus(cid, ContainerState.EXITED, exit_code=143)

    def destroy(self, cid: str) -> None:
        self.calls.append(("destroy", cid))


def runner(driver: FreezingDriver, reporter: RecordingReporter) -> StepRunner:
    return StepRunner(
        HostIdentity("ams-1", "ams"),
        driver,  # type: ignore[arg-type]
        images=None,  # type: ignore[arg-type]
        network=MachineNetwork("t-", "10.1.0.0/24"),
        reporter=reporter,
        memory={"m1": MachineMemory(acted_generation=1)},
    )


def test_suspend_freezes_and_reports_suspending_then_suspended() -> None:
    m = machine(desired=DesiredState.SUSPENDED, state=MachineState.STARTED, generation=1)
    driver, reporter = FreezingDriver(), RecordingReporter()
    [step] = plan_host([m], [container(m, ContainerState.RUNNING)], {}, set(), 0.0)
    runner(driver, reporter).run(step)
    assert driver.calls == [("pause", container_id(m))]
    assert [r["state"] for r in reporter.reports] == ["suspending", "suspended"]


def test_resume_thaws_and_reports_started_in_one_report() -> None:
    m = machine(desired=DesiredState.STARTED, state=MachineState.SUSPENDED, generation=1)
    driver, reporter = FreezingDriver(), RecordingReporter()
    memory = {"m1": MachineMemory(acted_generation=1)}
    [step] = plan_host([m], [container(m, ContainerState.PAUSED)], memory, set(), 0.0)
    assert step.kind is StepKind.RESUME
    runner(driver, reporter).run(step)
    assert driver.calls == [("resume", container_id(m))]
    assert [(r["state"], r["event"]) for r in reporter.reports] == [
        ("started", ("start", "resumed"))
    ]


def test_stop_of_a_suspended_machine_stops_its_process_and_reports_stopped() -> None:
    m = machine(desired=DesiredState.STOPPED, state=MachineState.SUSPENDED, generation=1)
    driver, reporter = FreezingDriver(), RecordingReporter()
    [step] = plan_host([m], [container(m, ContainerState.PAUSED)], {}, set(), 0.0)
    runner(driver, reporter).run(step)
    assert driver.calls == [("stop", container_id(m)), ("destroy", container_id(m))]
    assert [r["state"] for r in reporter.reports] == ["stopping", "stopped"]


class StuckDriver(FreezingDriver):
    def pause(self, cid: str) -> ContainerStatus:
        raise RuntimeFailure("`runc pause` failed: freezer busy")


def test_a_failed_freeze_leaves_it_started_with_the_reason_and_retries_after_a_backoff() -> None:
    m = machine(desired=DesiredState.SUSPENDED, state=MachineState.STARTED, generation=1)
    reporter = RecordingReporter()
    running = [container(m, ContainerState.RUNNING)]
    [step] = plan_host([m], running, {}, set(), 0.0)
    steps_runner = runner(StuckDriver(), reporter)
    steps_runner.run(step)
    assert [(r["state"], r["event"]) for r in reporter.reports] == [
        ("suspending", ("suspend", "suspending")),
        ("started", ("suspend", "failed")),
    ]
    assert "freezer busy" in reporter.reports[-1]["reason"]
    retry_at = steps_runner.memory["m1"].next_start_at
    assert plan_host([m], running, steps_runner.memory, set(), retry_at - 0.01) == []
    [again] = plan_host([m], running, steps_runner.memory, set(), retry_at)
    assert again.kind is StepKind.SUSPEND
