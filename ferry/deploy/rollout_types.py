"""What a rollout talks to and reports: its client's slice, progress and result.

``rollout.py`` runs the strategies with these; the CLI reads ``Progress``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from ferry.deploy.plan import DeployStep
from ferry.model import Machine, MachineConfig
from ferry.model.lease import MachineLease

__all__ = ["Phase", "Progress", "RolloutClient", "RolloutResult", "expected_check_count"]


class RolloutClient(Protocol):
    """The slice of ``FerryClient`` a rollout uses."""

    def create_machine(
        self,
        app: str,
        config: MachineConfig,
        *,
        region: str | None = None,
        name: str | None = None,
        skip_launch: bool = False,
        skip_service_registration: bool = False,
        region_fallback: bool = False,
    ) -> Machine: ...

    def update_machine(
        self,
        app: str,
        machine_id: str,
        config: MachineConfig,
        *,
        current_version: str | None = None,
        nonce: str | None = None,
    ) -> Machine: ...

    def wait_machine(
        self,
        app: str,
        machine_id: str,
        *,
        state: str = "started",
        timeout: float = 60,
        instance_id: str | None = None,
    ) -> str: ...

    def get_machine(self, app: str, machine_id: str) -> Machine: ...

    def stop_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        nonce: str | None = None,
    ) -> None: ...

    def delete_machine(
        self, app: str, machine_id: str, *, force: bool = False, nonce: str | None = None
    ) -> None: ...

    def cordon_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None: ...

    def uncordon_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None: ...

    def acquire_lease(
        self,
        app: str,
        machine_id: str,
        *,
        ttl: int | None = None,
        description: str | None = None,
        nonce: str | None = None,
    ) -> MachineLease: ...

    def release_lease(self, app: str, machine_id: str, nonce: str) -> None: ...


Phase = Literal[
    "begin", "launched", "started", "healthy", "ready", "cordoned", "failed", "destroyed", "note"
]


@dataclass(frozen=True)
class Progress:
    """One step of the rollout moved: ``begin`` → ``launched`` → ``started`` → ``healthy``
    (or ``failed``); ``destroyed`` when a canary, green or blue machine was retired.
    bluegreen adds ``ready`` (a green uncordoned), ``cordoned`` (a blue) and ``note``
    (``detail`` says what went wrong without stopping the deploy).
    ``elapsed`` counts seconds since the step began."""

    step: DeployStep
    phase: Phase
    machine: Machine | None = None
    elapsed: float = 0.0
    detail: str = ""


@dataclass
class RolloutResult:
    """What happened. ``failure`` is a sentence when the rollout stopped early."""

    machines: list[Machine] = field(default_factory=list)
    failure: str | None = None
    failed_step: DeployStep | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def expected_check_count(config: MachineConfig) -> int:
    """How many health checks a machine with ``config`` reports."""
    return len(config.checks) + sum(len(service.checks) for service in config.services)
