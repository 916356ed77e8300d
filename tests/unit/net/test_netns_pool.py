"""The agent prepares namespaces for exactly the addresses the control plane hands out next."""

from __future__ import annotations

from datetime import UTC, datetime

from ferry.model import DesiredState, Host, HostStatus, Machine, MachineConfig, MachineState
from ferry.net.netns_pool import next_free_addresses
from ferry.server.placement import allocate_private_ip

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_next_free_skips_network_gateway_and_used() -> None:
    used = {"10.1.0.2", "10.1.0.3", "10.1.0.5"}
    assert next_free_addresses("10.1.0.0/24", used, 3) == ["10.1.0.4", "10.1.0.6", "10.1.0.7"]


def test_a_full_subnet_has_no_next_address() -> None:
    assert next_free_addresses("10.1.0.0/30", {"10.1.0.2"}, 2) == []


def _machine(n: int, ip: str, state: MachineState) -> Machine:
    return Machine(
        id=f"m{n:013d}",
        name=f"m{n}",
        app_name="hello",
        state=state,
        desired_state=DesiredState.STARTED,
        region="ams",
        instance_id="01",
        private_ip=ip,
        config=MachineConfig(image="busybox"),
        host_id="ams-1",
        created_at=NOW,
        updated_at=NOW,
    )


def test_the_first_prepared_address_is_the_one_the_control_plane_allocates() -> None:
    host = Host(
        id="ams-1",
        region="ams",
        address="10.0.0.2",
        cpus=2,
        memory_mb=2048,
        machine_subnet="10.1.0.0/24",
        status=HostStatus.UP,
        last_heartbeat=NOW,
        registered_at=NOW,
    )
    machines = [
        _machine(1, "10.1.0.2", MachineState.STARTED),
        _machine(2, "10.1.0.3", MachineState.DESTROYED),  # its address is free again
        _machine(3, "10.1.0.4", MachineState.STOPPED),
    ]
    live = [m.private_ip for m in machines if m.state is not MachineState.DESTROYED]
    predicted = next_free_addresses(host.machine_subnet, live, 2)
    assert predicted[0] == allocate_private_ip(host, machines) == "10.1.0.3"
