"""Each container start asks for the app's secrets and puts them in its environment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ferry.agent.reconcile import StepKind, plan_host
from ferry.agent.runner import HostIdentity, StepRunner
from ferry.errors import UnavailableError
from ferry.model import MachineState
from ferry.runtime.driver import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    ImageConfig,
    LocalImage,
)

from ...agent_fakes import host_machine

VALUE = "agent-side-secret"


class Host:
    """Image store, network and driver in one fake; keeps the specs it started."""

    def __init__(self) -> None:
        self.specs: list[ContainerSpec] = []
        self.reports: list[tuple[str, str | None]] = []

    def ensure(self, *args: Any) -> Any:
        if len(args) == 2:  # the network's ensure(machine_id, ip)
            return Path("/run/netns/x")
        return LocalImage("sha256:" + "0" * 64, Path("/x"), ImageConfig(cmd=("app",)))

    def destroy(self, container_id: str) -> None:
        pass

    def start(self, spec: ContainerSpec) -> ContainerStatus:
        self.specs.append(spec)
        return ContainerStatus(spec.container_id, ContainerState.RUNNING, pid=7)

    def report_status(self, host_id: str, machine_id: str, state: str, *a: Any, **k: Any) -> None:
        self.reports.append((state, k.get("reason")))


class Vault:
    """The control plane's secrets route: values, or unreachable."""

    def __init__(self) -> None:
        self.values = {"API_KEY": VALUE}
        self.down = False
        self.asked: list[tuple[str, str]] = []

    def machine_secrets(self, host_id: str, machine_id: str) -> dict[str, str]:
        self.asked.append((host_id, machine_id))
        if self.down:
            raise UnavailableError("cannot reach the Ferry API")
        return dict(self.values)


def _start(host: Host, vault: Vault, runner: StepRunner | None = None) -> StepRunner:
    runner = runner or StepRunner(
        HostIdentity("ams-1", "ams"),
        host,
        host,
        host,
        host,
        {},
        secrets=vault,  # type: ignore[arg-type]
    )
    machine = host_machine(state=MachineState.CREATED)
    [step] = plan_host([machine], [], {}, set(), 0.0)
    assert step.kind is StepKind.START
    runner.run(step)
    return runner


def test_a_start_asks_for_its_machines_secrets_and_never_logs_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, vault = Host(), Vault()
    with caplog.at_level(logging.DEBUG):
        _start(host, vault)
    assert vault.asked == [("ams-1", host_machine().id)]
    assert host.specs[0].env["API_KEY"] == VALUE
    assert VALUE not in caplog.text


def test_an_unreachable_control_plane_restarts_with_the_last_values_or_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, vault = Host(), Vault()
    vault.down = True
    _start(host, vault)
    assert host.specs == []  # never started without its secrets
    assert host.reports[-1][0] == "failed"
    vault.down = False
    runner = _start(host, vault)
    vault.down = True
    vault.values = {"API_KEY": "newer"}
    with caplog.at_level(logging.WARNING):
        _start(host, vault, runner)
    assert [s.env["API_KEY"] for s in host.specs] == [VALUE, VALUE]
    assert "last known secrets" in caplog.text and VALUE not in caplog.text
