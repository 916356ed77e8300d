"""The runner stops a machine by the user's stop request when it gave a signal or timeout."""

from __future__ import annotations

from typing import Any

from ferry.agent.network_hook import MachineNetwork
from ferry.agent.reconcile import LABEL_MACHINE, StepKind, container_id, plan_host
from ferry.agent.runner import HostIdentity, StepRunner
from ferry.model import DesiredState, Machine, MachineConfig, StopConfig
from ferry.model.machine import StopOverride
from ferry.runtime.driver import ContainerState, ContainerStatus

from ...agent_fakes import host_machine


class RecordingDriver:
    """Just enough of a driver for the stop step: records each stop call."""

    def __init__(self) -> None:
        self.stops: list[tuple[str, str, float]] = []
        self.destroyed: list[str] = []

    def stop(self, cid: str, signal: str, timeout: float) -> ContainerStatus:
        self.stops.append((cid, signal, timeout))
        return ContainerStatus(cid, ContainerState.EXITED, exit_code=137)

    def destroy(self, cid: str) -> None:
        self.destroyed.append(cid)


class RecordingReporter:
    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def report_status(
        self, host_id: str, machine_id: str, state: str, *args: Any, **kw: Any
    ) -> None:
        self.reports.append({"state": state, "event": args[1:3], **kw})


def stopping_machine(override: StopOverride | None) -> Machine:
    config = MachineConfig(image="x", stop_config=StopConfig(signal="SIGTERM", timeout="30s"))
    return host_machine(desired=DesiredState.STOPPED, config=config, stop_override=override)


def stop_once(
    m: Machine, before_destroy: Any = None, driver: RecordingDriver | None = None
) -> tuple[RecordingDriver, RecordingReporter]:
    driver, reporter = driver or RecordingDriver(), RecordingReporter()
    running = ContainerStatus(
        container_id(m), ContainerState.RUNNING, pid=42, labels={LABEL_MACHINE: m.id}
    )
    [step] = plan_host([m], [running], {}, set(), 0.0)
    assert step.kind is StepKind.STOP
    runner = StepRunner(
        HostIdentity("ams-1", "ams"),
        driver,  # type: ignore[arg-type]
        images=None,  # type: ignore[arg-type]
        network=MachineNetwork("t-", "10.1.0.0/24"),
        reporter=reporter,
        memory={},
        before_destroy=before_destroy,
    )
    runner.run(step)
    return driver, reporter


def test_stop_request_signal_and_timeout_are_what_the_process_gets() -> None:
    driver, reporter = stop_once(stopping_machine(StopOverride(signal="SIGKILL", timeout="1s")))
    assert driver.stops == [("m1-i1", "SIGKILL", 1.0)]
    assert driver.destroyed == ["m1-i1"]
    assert [r["state"] for r in reporter.reports] == ["stopping", "stopped"]
    assert reporter.reports[0]["reason"] == "sending SIGKILL"
    assert reporter.reports[1]["exit_code"] == 137


def test_a_request_with_only_a_timeout_keeps_the_configs_signal() -> None:
    driver, _ = stop_once(stopping_machine(StopOverride(timeout="2s")))
    assert driver.stops == [("m1-i1", "SIGTERM", 2.0)]


def test_without_a_request_the_config_stop_is_used() -> None:
    driver, reporter = stop_once(stopping_machine(None))
    assert driver.stops == [("m1-i1", "SIGTERM", 30.0)]
    assert reporter.reports[0]["reason"] == "sending SIGTERM, SIGKILL after 30s"


def test_the_last_output_is_shipped_after_the_stop_and_before_the_container_goes() -> None:
    driver = RecordingDriver()
    seen: list[tuple[str, str, list[str], list[str]]] = []

    def ship_rest(m: Machine, cid: str) -> None:
        seen.append((m.id, cid, [stop[0] for stop in driver.stops], list(driver.destroyed)))

    stop_once(stopping_machine(None), before_destroy=ship_rest, driver=driver)

    assert seen == [("m1", "m1-i1", ["m1-i1"], [])]  # stopped, not yet destroyed
    assert driver.destroyed == ["m1-i1"]
