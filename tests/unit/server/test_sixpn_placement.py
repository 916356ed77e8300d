"""The pure 6PN allocation of machine creation: lowest free machine number per host."""

from __future__ import annotations

from datetime import UTC, datetime

from ferry.model import Host, Machine, MachineState
from ferry.net import sixpn
from ferry.server.placement import allocate_private_ip

from ...agent_fakes import host_machine

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _host(host_id: str, number: int) -> Host:
    return Host(
        id=host_id,
        region="ams",
        address="10.0.0.2",
        cpus=4,
        memory_mb=4096,
        machine_subnet="10.1.0.0/24",
        last_heartbeat=NOW,
        registered_at=NOW,
        sixpn_host=number,
    )


def _on(
    host: str, network: int, number: int, state: MachineState = MachineState.STARTED
) -> Machine:
    address = str(sixpn.machine_address(network, 7 if host == "ams-1" else 8, number))
    return host_machine(state=state).model_copy(update={"host_id": host, "private_ip": address})


def test_the_lowest_number_no_live_machine_of_the_host_holds() -> None:
    host = _host("ams-1", 7)
    assert allocate_private_ip(host, 3, []) == str(sixpn.machine_address(3, 7, 1))
    machines = [
        _on("ams-1", 1, 1),  # another organization's: machine numbers are per host
        _on("ams-1", 3, 2, MachineState.STOPPED),  # stopped machines keep theirs
        _on("ams-1", 3, 3, MachineState.DESTROYED),  # destroyed: free again
        _on("ams-2", 3, 3),  # another host's
    ]
    assert allocate_private_ip(host, 3, machines) == str(sixpn.machine_address(3, 7, 3))
    assert allocate_private_ip(host, 3, [*machines[:2], _on("ams-1", 3, 3)]) == str(
        sixpn.machine_address(3, 7, 4)
    )
