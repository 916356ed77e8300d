"""The runner's start step: "starting" is reported while the container is prepared, in order."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ferry.agent.reconcile import StepKind, plan_host
from ferry.agent.runner import HostIdentity, StepRunner
from ferry.errors import RuntimeFailure
from ferry.model import Machine, MachineState
from ferry.runtime.driver import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    ImageConfig,
    LocalImage,
)

from ...agent_fakes import host_machine

SLOW_REPORT = 0.3


class SlowReporter:
    """A control plane whose "starting" answer takes a while; records the order of reports."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.lock = threading.Lock()

    def report_status(self, host_id: str, machine_id: str, state: str, *a: Any, **k: Any) -> None:
        if state == "starting":
            time.sleep(SLOW_REPORT)  # deliberate: the slow answer is the condition tested
        with self.lock:
            self.log.append(f"report {state}")


class Host:
    """Image store, network and driver in one fake; logs when the container starts."""

    def __init__(self, reporter: SlowReporter, *, fail: bool = False) -> None:
        self.reporter = reporter
        self.fail = fail

    def ensure(self, reference: str) -> LocalImage:
        return LocalImage("sha256:" + "0" * 64, Path("/nonexistent"), ImageConfig(cmd=("app",)))

    def destroy(self, container_id: str) -> None:
        pass

    def start(self, spec: ContainerSpec) -> ContainerStatus:
        with self.reporter.lock:
            self.reporter.log.append("container started")
        if self.fail:
            raise RuntimeFailure("no such binary")
        return ContainerStatus(spec.container_id, ContainerState.RUNNING, pid=7)


class Network:
    def ensure(self, machine_id: str, host_ip: str, private_ip: str = "") -> Path:
        return Path("/run/netns/x")


def machine() -> Machine:
    return host_machine(state=MachineState.CREATED)


def start_once(*, fail: bool = False) -> list[str]:
    reporter = SlowReporter()
    host = Host(reporter, fail=fail)
    [step] = plan_host([machine()], [], {}, set(), 0.0)
    assert step.kind is StepKind.START
    runner = StepRunner(
        HostIdentity("ams-1", "ams"),
        host,
        host,
        Network(),
        reporter,
        {},  # type: ignore[arg-type]
    )
    runner.run(step)
    return reporter.log


def test_the_container_starts_while_starting_is_reported_and_started_comes_after() -> None:
    log = start_once()
    assert log == ["container started", "report starting", "report started"]


def test_a_failed_start_is_reported_after_starting() -> None:
    log = start_once(fail=True)
    assert log[0] == "container started"
    assert log[1:] == ["report starting", "report failed"]


def test_the_agent_logs_where_a_start_spent_its_time(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ferry.agent.runner"):
        start_once()
    [line] = [r.getMessage() for r in caplog.records if "started in" in r.getMessage()]
    phases = re.findall(r"([\w-]+) [\d.]+ ms", line.split("(start; ")[1])
    assert phases == ["image", "network", "spec", "container", "starting-report"]
    # The "starting" report (0.3 s here) is what the start waited for at the end.
    waited = float(re.search(r"starting-report ([\d.]+) ms", line).group(1))  # type: ignore[union-attr]
    assert waited > SLOW_REPORT * 1000 / 2
