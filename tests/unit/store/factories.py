"""Small builders of domain objects for the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ferry.model import (
    App,
    DesiredState,
    Host,
    Machine,
    MachineConfig,
    MachineEvent,
    MachineState,
    Organization,
)
from ferry.net import sixpn

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_app(name: str = "web") -> App:
    return App(
        id=f"id-{name}",
        name=name,
        organization=Organization(name="Personal", slug="personal"),
        created_at=T0,
    )


def make_host(host_id: str = "ams-1", region: str = "ams") -> Host:
    return Host(
        id=host_id,
        region=region,
        address="10.0.0.2",
        cpus=4,
        memory_mb=4096,
        machine_subnet="10.1.0.0/24",
        last_heartbeat=T0,
        registered_at=T0,
    )


def make_machine(
    machine_id: str = "m1", *, app: str = "web", host: str = "ams-1", ip: str = "10.1.0.2"
) -> Machine:
    return Machine(
        id=machine_id,
        name=f"name-{machine_id}",
        app_name=app,
        state=MachineState.CREATED,
        desired_state=DesiredState.STARTED,
        region="ams",
        instance_id=f"inst-{machine_id}",
        private_ip=str(sixpn.machine_address(1, sum(host.encode()), int(ip.split(".")[-1]))),
        host_ip=ip,
        config=MachineConfig(image="registry.local/web:1", env={"A": "1"}),
        host_id=host,
        created_at=T0,
        updated_at=T0,
    )


def make_event(n: int, type_: str = "launch") -> MachineEvent:
    return MachineEvent(
        id=f"ev{n}",
        type=type_,
        status="created",
        source="user",
        timestamp=int((T0 + timedelta(seconds=n)).timestamp() * 1000),
    )
