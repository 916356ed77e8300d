"""Machines and an in-memory rollout client for the deploy tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ferry.errors import ApiError
from ferry.model import CheckStatus, DesiredState, Machine, MachineConfig, MachineState
from ferry.model.lease import MachineLease

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def make_machine(
    machine_id: str,
    region: str = "ams",
    *,
    state: MachineState = MachineState.STARTED,
    desired: DesiredState = DesiredState.STARTED,
    created_minute: int = 0,
    config: MachineConfig | None = None,
    **extra: Any,
) -> Machine:
    return Machine(
        id=machine_id,
        name=f"name-{machine_id}",
        app_name="web",
        state=state,
        desired_state=desired,
        region=region,
        instance_id=f"inst-{machine_id}-1",
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip="10.0.0.2",
        config=config or MachineConfig(image="reg/web@sha256:" + "0" * 64),
        host_id=f"host-{region}",
        created_at=T0 + timedelta(minutes=created_minute),
        updated_at=T0 + timedelta(minutes=created_minute),
        **extra,
    )


class FakeClock:
    """A monotonic clock that only moves when something sleeps or long-polls."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeRolloutClient:
    """Keeps machines in a dict. ``wait_outcome[id]`` picks what ``wait_machine`` does:
    ``"ok"`` (default), ``"fail"`` (409) or ``"timeout"`` (408). ``checks_after[id]`` is the
    number of ``get_machine`` calls after which the machine's checks pass (``None``: critical
    forever). ``refuse_cordon`` holds ids whose cordon and uncordon answer 409. ``leases``
    holds live leases (id -> nonce): a change must carry the nonce, as on the server."""

    def __init__(self, machines: list[Machine], clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.machines = {m.id: m for m in machines}
        self.calls: list[tuple[str, str]] = []
        self.wait_outcome: dict[str, str] = {}
        self.checks_after: dict[str, int | None] = {}
        self.refuse_cordon: set[str] = set()
        self.leases: dict[str, str] = {}  # machine id -> the live lease's nonce
        self.lease_calls: list[tuple[str, str]] = []
        self._gets: dict[str, int] = {}
        self._created = 0
        self._version = 1

    def _new_instance(self, machine_id: str) -> str:
        self._version += 1
        return f"inst-{machine_id}-{self._version}"

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
    ) -> Machine:
        self._created += 1
        machine_id = f"new{self._created}"
        self.calls.append(
            ("create-cordoned" if skip_service_registration else "create", region or "")
        )
        machine = make_machine(machine_id, region or "ams", state=MachineState.CREATED)
        machine = machine.model_copy(
            update={
                "config": config,
                "instance_id": self._new_instance(machine_id),
                "cordoned": skip_service_registration,
            }
        )
        self.machines[machine_id] = machine
        return machine

    def update_machine(
        self,
        app: str,
        machine_id: str,
        config: MachineConfig,
        *,
        current_version: str | None = None,
        nonce: str | None = None,
    ) -> Machine:
        self._check_nonce(machine_id, nonce)
        self.calls.append(("update", machine_id))
        current = self.machines[machine_id]
        if current_version is not None and current_version != current.instance_id:
            raise ApiError("machine was changed meanwhile", status=409)
        machine = current.model_copy(
            update={
                "config": config,
                "instance_id": self._new_instance(machine_id),
                "updated_at": T0 + timedelta(hours=1),
                "state": MachineState.REPLACING,
            }
        )
        self.machines[machine_id] = machine
        return machine

    def wait_machine(
        self,
        app: str,
        machine_id: str,
        *,
        state: str = "started",
        timeout: float = 60,
        instance_id: str | None = None,
    ) -> str:
        if state == "stopped":
            self.calls.append(("wait-stopped", machine_id))
            self.machines[machine_id] = self.machines[machine_id].model_copy(
                update={"state": MachineState.STOPPED}
            )
            return "stopped"
        self.calls.append(("wait", machine_id))
        outcome = self.wait_outcome.get(machine_id, "ok")
        if outcome == "fail":
            raise ApiError(f"machine {machine_id} failed: exit code 3", status=409)
        if outcome == "timeout":
            self.clock.sleep(timeout)
            raise ApiError(f"timeout waiting for machine {machine_id}", status=408)
        self.machines[machine_id] = self.machines[machine_id].model_copy(
            update={"state": MachineState.STARTED}
        )
        return "started"

    def stop_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        nonce: str | None = None,
    ) -> None:
        self._check_nonce(machine_id, nonce)
        self.calls.append(("stop", machine_id))

    def cordon_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._check_nonce(machine_id, nonce)
        self.calls.append(("cordon", machine_id))
        if machine_id in self.refuse_cordon:
            raise ApiError(f"machine {machine_id} refused the cordon", status=409)
        self._set_cordoned(machine_id, True)

    def uncordon_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        self._check_nonce(machine_id, nonce)
        self.calls.append(("uncordon", machine_id))
        if machine_id in self.refuse_cordon:
            raise ApiError(f"machine {machine_id} refused the uncordon", status=409)
        self._set_cordoned(machine_id, False)

    # -- leases: the server's rules (lease.check_nonce) on a dict -----------------
    def acquire_lease(
        self,
        app: str,
        machine_id: str,
        *,
        ttl: int | None = None,
        description: str | None = None,
        nonce: str | None = None,
    ) -> MachineLease:
        if machine_id not in self.machines:
            raise ApiError(f"machine {machine_id} not found", status=404)
        held = self.leases.get(machine_id)
        if held is not None and nonce != held:
            raise ApiError(f"machine {machine_id} has a lease held by admin (other)", status=409)
        if held is None and nonce is not None:
            raise ApiError(f"machine {machine_id} has no live lease", status=412)
        self.lease_calls.append(("refresh" if nonce else "lease", machine_id))
        self.leases[machine_id] = nonce or f"nonce-{machine_id}"
        return MachineLease(nonce=self.leases[machine_id], expires_at=0, description="x")

    def release_lease(self, app: str, machine_id: str, nonce: str) -> None:
        if self.leases.get(machine_id) != nonce:
            raise ApiError(f"machine {machine_id} has no live lease", status=412)
        self.lease_calls.append(("release", machine_id))
        del self.leases[machine_id]

    def _check_nonce(self, machine_id: str, nonce: str | None) -> None:
        held = self.leases.get(machine_id)
        if (held is None and nonce is not None) or (held is not None and nonce != held):
            raise ApiError(f"machine {machine_id}: wrong lease nonce {nonce!r}", status=409)

    def _set_cordoned(self, machine_id: str, cordoned: bool) -> None:
        machine = self.machines[machine_id]
        self.machines[machine_id] = machine.model_copy(update={"cordoned": cordoned})

    def delete_machine(
        self, app: str, machine_id: str, *, force: bool = False, nonce: str | None = None
    ) -> None:
        self._check_nonce(machine_id, nonce)
        self.calls.append(("destroy", machine_id))
        self.leases.pop(machine_id, None)  # a lease goes with its machine
        del self.machines[machine_id]

    def get_machine(self, app: str, machine_id: str) -> Machine:
        machine = self.machines[machine_id]
        count = self._gets[machine_id] = self._gets.get(machine_id, 0) + 1
        if machine_id in self.checks_after:
            after = self.checks_after[machine_id]
            status = "passing" if after is not None and count > after else "critical"
            check = CheckStatus(
                name="http",
                status=status,
                output="connection refused",
                updated_at=T0 + timedelta(hours=2),
            )
            machine = machine.model_copy(update={"checks": [check]})
            self.machines[machine_id] = machine
        return machine
